"""Builds the FastAGI server with every route bound to the running core."""

from __future__ import annotations

import resource
from types import ModuleType

from sac_ivr.agi.channel_vars import RESULT
from sac_ivr.agi.routes import ROUTE_MODULES
from sac_ivr.asterisk.fastagi import AgiCall, FastAgiServer, RouteHandler
from sac_ivr.core import Core


def route_name(module: ModuleType) -> str:
    return module.__name__.rsplit(".", 1)[-1]


def _bind(module: ModuleType, core: Core) -> RouteHandler:
    async def route(call: AgiCall) -> None:
        await module.handle(call, core)

    route.__name__ = f"agi_{route_name(module)}"
    return route


# File descriptors kept for calls in progress' neighbours: database, logs, the
# call events channel.
FD_RESERVE = 200


def build_agi_server(core: Core) -> FastAgiServer:
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
    for module in ROUTE_MODULES:
        server.add_route(route_name(module), _bind(module, core))
    return server
