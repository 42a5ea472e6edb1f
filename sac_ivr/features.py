"""Every feature of sac-ivr, in one list: the only registry.

Each entry is the :class:`~sac_ivr.feature.Feature` its package declares in its
``feature.py``; everything that wires features reads this list: the tables
(alembic, test databases), the HTTP app, the FastAGI routes, the web process's
background work, the CLI commands, the settings checks and the hooks.

What runs when a call arrives: Asterisk runs the ``protocol`` AGI route (the call
path); it asks ``core.issuer`` for a number, and the issuing transaction runs the
**issued** hooks: lifecycle's due date, notifications' opening SMS in the outbox;
after the commit the outbox worker is woken. If the caller presses the SMS key, the
**sms_requested** hook (lifecycle) queues the SMS. In the web process the outbox
worker sends it; **notice_delivered** lets history mark a sent history delivered.
Meanwhile the calls feature follows the call over AMI into the call log and the
live state the panels show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from sqlalchemy import MetaData

from sac_ivr.agi.feature import FEATURE as CALL_PATH
from sac_ivr.audit.feature import FEATURE as AUDIT
from sac_ivr.auth.feature import FEATURE as AUTH
from sac_ivr.calls.feature import FEATURE as CALLS
from sac_ivr.config import Settings, SettingsCheck
from sac_ivr.core import Core
from sac_ivr.db.base import Base
from sac_ivr.feature import AgiRoute, Commands, Feature
from sac_ivr.history.feature import FEATURE as HISTORY
from sac_ivr.http.app import create_app as create_bare_app
from sac_ivr.lifecycle.feature import FEATURE as LIFECYCLE
from sac_ivr.live import LiveHub
from sac_ivr.notifications.feature import FEATURE as NOTIFICATIONS
from sac_ivr.panels.feature import FEATURE as PANELS
from sac_ivr.protocols.feature import FEATURE as PROTOCOLS
from sac_ivr.reports.feature import FEATURE as REPORTS
from sac_ivr.retention.feature import FEATURE as RETENTION
from sac_ivr.sounds.feature import FEATURE as SOUNDS

# In this order: HTTP routes are added, background work starts (and stops in
# reverse), hooks are wired, commands are listed.
FEATURES: tuple[Feature[Core], ...] = (
    PROTOCOLS,
    LIFECYCLE,
    HISTORY,
    REPORTS,
    NOTIFICATIONS,
    CALLS,
    PANELS,
    AUTH,
    AUDIT,
    RETENTION,
    SOUNDS,
    CALL_PATH,
)

SETTINGS_CHECKS: tuple[SettingsCheck, ...] = tuple(
    f.check_settings for f in FEATURES if f.check_settings is not None
)


def load_settings(**kwargs: Any) -> Settings:
    """``Settings.load`` with every feature's settings check."""
    return Settings.load(**kwargs, checks=SETTINGS_CHECKS)


def check_settings(settings: Settings) -> None:
    """Every check of ``Settings.load`` again (settings handed to a child process)."""
    settings.validate(SETTINGS_CHECKS)


def build_core(settings: Settings, live: LiveHub | None = None, **engine_kwargs: Any) -> Core:
    """The process's core with every feature's hooks wired, before anything runs
    (``live``: the call process's hub that forwards to the web process)."""
    core = Core.create(settings, live=live, **engine_kwargs)
    for feature in FEATURES:
        if feature.wire is not None:
            feature.wire(core)
    return core


def create_app(core: Core) -> web.Application:
    """The HTTP app with every feature's routes."""
    return create_bare_app(core, [f.http for f in FEATURES if f.http is not None])


def agi_routes() -> Mapping[str, AgiRoute[Core]]:
    routes: dict[str, AgiRoute[Core]] = {}
    for feature in FEATURES:
        for name, handler in feature.agi_routes.items():
            if name in routes:
                raise ValueError(f"AGI route {name!r} declared twice")
            routes[name] = handler
    return routes


async def start_background(core: Core) -> None:
    """The web process's background work, stopped (in reverse) by ``core.close()``."""
    for feature in FEATURES:
        if feature.background is not None:
            work = await feature.background(core)
            if work is not None:
                core.background.append(work)


def add_commands(subparsers: Any, commands: Commands[Core]) -> None:
    for feature in FEATURES:
        if feature.cli is not None:
            feature.cli(subparsers, commands)


def table_metadata() -> MetaData:
    """Every feature's tables (each feature.py imports its tables module)."""
    return Base.metadata
