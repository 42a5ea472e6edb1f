"""Running the service: FastAGI and HTTP in one process, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from sac_ivr.agi.server import build_agi_server
from sac_ivr.asterisk.fastagi import FastAgiServer
from sac_ivr.calls.services import start_calls
from sac_ivr.config import Settings
from sac_ivr.db.migrate import upgrade_async
from sac_ivr.http.app import create_app
from sac_ivr.notifications.worker import start_outbox_worker
from sac_ivr.services import Services

log = logging.getLogger(__name__)

# Calls in the middle of an announcement get this long to finish on shutdown.
DRAIN_SECONDS = 10.0

# Features that start background work (AMI client, outbox worker) register a
# starter here: async fn(services, app) called once the listeners are up.
Starter = Callable[[Services, web.Application], Awaitable[None]]
STARTERS: list[Starter] = [start_outbox_worker, start_calls]


@dataclass
class RunningService:
    services: Services
    agi: FastAgiServer
    http: web.AppRunner
    agi_port: int
    http_port: int

    async def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        await self.agi.close()
        if not await self.agi.wait_idle(drain_seconds):
            log.warning("%d call(s) still in progress at shutdown", self.agi.active_calls)
        await self.http.cleanup()
        await self.services.close()


async def start_service(settings: Settings, migrate: bool = True) -> RunningService:
    if migrate:
        await upgrade_async(settings.database_url)
    services = Services.create(settings)
    app = create_app(services)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    agi = build_agi_server(services)
    server = await agi.start(settings.agi_host, settings.agi_port)
    agi_port = server.sockets[0].getsockname()[1]
    http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    for starter in STARTERS:
        await starter(services, app)
    log.info(
        "sac-ivr serving FastAGI on %s:%d and HTTP on %s:%d (database %s)",
        settings.agi_host,
        agi_port,
        settings.http_host,
        http_port,
        services.engine.url.render_as_string(hide_password=True),
    )
    return RunningService(services, agi, runner, agi_port, http_port)


async def serve(settings: Settings, migrate: bool = True) -> None:
    """Run until SIGTERM or SIGINT, then drain calls in progress and stop."""
    running = await start_service(settings, migrate=migrate)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # Tell whoever started us (tests, systemd-notify wrappers) that we listen.
    print(f"READY agi={running.agi_port} http={running.http_port}", flush=True)
    await stop.wait()
    log.info("stopping: %d call(s) in progress", running.agi.active_calls)
    await running.stop()
