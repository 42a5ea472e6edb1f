"""Builds the FastAGI server with its routes bound to the running core."""

from __future__ import annotations

import resource
from collections.abc import Mapping

from sac_ivr.agi.channel_vars import RESULT
from sac_ivr.asterisk.fastagi import AgiCall, FastAgiServer, RouteHandler
from sac_ivr.core import Core
from sac_ivr.feature import AgiRoute


def _bind(name: str, handler: AgiRoute[Core], core: Core) -> RouteHandler:
    async def route(call: AgiCall) -> None:
        await handler(call, core)

    route.__name__ = f"agi_{name}"
    return route


# File descriptors kept for calls in progress' neighbours: database, logs, the
# call events channel.
FD_RESERVE = 200


def build_agi_server(core: Core, routes: Mapping[str, AgiRoute[Core]]) -> FastAgiServer:
    """The FastAGI server with ``routes`` (every feature's: :func:`sac_ivr.features.agi_routes`)."""
    settings = core.settings
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1_000_000
    server = FastAgiServer(
        header_timeout=settings.agi_header_timeout,
        command_timeout=settings.agi_command_timeout,
        max_connections=settings.agi_max_connections,
        allowed_peers=settings.agi_allowed_peers,
        # Connections still sending their header may use what calls leave of the
        # file limit (raised to the hard limit in the call process).
        max_pending=max(100, soft - settings.agi_max_connections - FD_RESERVE),
        error_variable=RESULT,
    )
    for name, handler in routes.items():
        server.add_route(name, _bind(name, handler, core))
    return server
