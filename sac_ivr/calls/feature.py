"""Calls: the call log and the live call state, both from the Asterisk Manager
Interface (AMI), followed by the web process when ``ami_enabled``.

With AMI on, the core keeps its runtime (:class:`~sac_ivr.calls.runtime.CallsRuntime`)
as ``core.live_calls``, which the panels read; the web process starts it as its
background work.
"""

from __future__ import annotations

from sac_ivr.calls import http, tables
from sac_ivr.calls.runtime import keep_live_calls, start_calls
from sac_ivr.calls.servers import ami_servers
from sac_ivr.config import ConfigError, Settings
from sac_ivr.core import Core
from sac_ivr.feature import Feature


def check_settings(settings: Settings) -> None:
    ami_servers(settings)  # raises ConfigError on a malformed list
    for name in (
        "ami_action_timeout",
        "ami_ping_interval",
        "ami_reconnect_max",
        "ami_follow_retry",
        "ami_follow_expiry",
        "ami_alive_interval",
    ):
        if not 0 < getattr(settings, name) <= 3600:
            raise ConfigError(f"{name}: must be more than 0 and at most 3600 seconds")
    if not 0 <= settings.ami_reconcile_interval <= 86400:
        raise ConfigError("ami_reconcile_interval: must be between 0 and 86400 seconds")
    if settings.ami_enabled and not settings.ami_secret:
        raise ConfigError("ami_secret: required when ami_enabled is on")


FEATURE = Feature[Core](
    name="calls",
    depends_on=("agi", "audit", "auth", "protocols"),
    tables=tables,
    http=http.setup,
    background=start_calls,
    check_settings=check_settings,
    wire=keep_live_calls,
)
