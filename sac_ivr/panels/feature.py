"""Panels: the agent panel and the supervisor view, their login session and the
live event stream (reads ``core.live_calls`` and ``core.live``)."""

from __future__ import annotations

from sac_ivr.config import ConfigError, Settings
from sac_ivr.core import Core
from sac_ivr.feature import Feature
from sac_ivr.panels import http


def check_settings(settings: Settings) -> None:
    if not 1 <= settings.panels_max_wait_s <= 3600:
        raise ConfigError("panels_max_wait_s: must be between 1 and 3600 seconds")
    if not 1.0 <= settings.panels_heartbeat_s <= 300.0:
        raise ConfigError("panels_heartbeat_s: must be between 1 and 300 seconds")
    if not 0 < settings.panels_session_hours <= 24 * 31:
        raise ConfigError("panels_session_hours: must be more than 0 and at most 744")
    if not 1 <= settings.panels_max_streams_per_token <= 1000:
        raise ConfigError("panels_max_streams_per_token: must be between 1 and 1000")


FEATURE = Feature[Core](
    name="panels", depends_on=("auth", "calls"), http=http.setup, check_settings=check_settings
)
