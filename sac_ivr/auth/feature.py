"""Auth: API tokens and roles, panel sessions, rate limits, client addresses behind
trusted proxies, and the shared keys (``sac-ivr token``)."""

from __future__ import annotations

from sac_ivr.auth import cli, http, tables
from sac_ivr.auth.clients import parse_networks
from sac_ivr.config import Settings
from sac_ivr.core import Core
from sac_ivr.feature import Feature


def check_settings(settings: Settings) -> None:
    parse_networks(settings.trusted_proxies)  # raises ConfigError naming the bad entry


FEATURE = Feature[Core](
    name="auth",
    tables=tables,
    http=http.setup,
    cli=cli.add_parser,
    check_settings=check_settings,
)
