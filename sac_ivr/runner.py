"""Building and running the service's two roles.

- the **call role**: the FastAGI server, the protocol issuer and the AGI routes,
  nothing else;
- the **web role**: the HTTP API and panels, and every background job (the AMI link
  with the call log and live tracker, the notification outbox worker).

``sac-ivr serve`` runs each role in its own process under a supervisor
(:mod:`sac_ivr.supervisor`; :func:`run_role` is a child's body), so that nothing an
HTTP client or a background job does can delay a call. :func:`start_service` runs
both in this process on one event loop (the tests' ``running`` fixtures). Both modes
build each role with the same functions, :func:`start_call` and :func:`start_web`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from sac_ivr.agi.server import build_agi_server
from sac_ivr.asterisk.fastagi import ACCEPT_BATCH, LISTEN_BACKLOG, FastAgiServer
from sac_ivr.bridge import CallEventReceiver, forward_call_events
from sac_ivr.config import Settings
from sac_ivr.core import Core
from sac_ivr.db.migrate import upgrade_async
from sac_ivr.features import agi_routes, build_core, create_app, start_background
from sac_ivr.http.guard import GuardedAppRunner, HttpLimits

log = logging.getLogger(__name__)

# Calls in the middle of an announcement get this long to finish on shutdown.
DRAIN_SECONDS = 10.0
# File descriptors the web process keeps for itself (database, AMI, SMTP, SMS
# provider, logs) beyond its HTTP connections.
WEB_FD_RESERVE = 200

CALL_ROLE = "call"
WEB_ROLE = "web"


def bind_listener(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket (port 0: any free port)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def raise_fd_limit() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard one; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open file limit from %d: %s", soft, exc)
    return 1_000_000 if soft == resource.RLIM_INFINITY else soft


async def start_call(core: Core, sock: socket.socket) -> FastAgiServer:
    """The call role: FastAGI on ``sock``."""
    core.issuer.start()
    agi = build_agi_server(core, agi_routes())
    await agi.serve_socket(sock)
    return agi


def http_limits(settings: Settings, fd_limit: int | None = None) -> HttpLimits:
    limits = HttpLimits.from_settings(settings)
    if fd_limit is not None and limits.max_connections > fd_limit - WEB_FD_RESERVE:
        fitted = max(1, fd_limit - WEB_FD_RESERVE)
        log.warning(
            "http_max_connections lowered from %d to %d: the open file limit is %d",
            limits.max_connections,
            fitted,
            fd_limit,
        )
        limits = HttpLimits(
            header_timeout=limits.header_timeout,
            body_timeout=limits.body_timeout,
            keepalive_timeout=limits.keepalive_timeout,
            max_connections=fitted,
            max_per_client=min(limits.max_per_client, fitted),
        )
    return limits


async def start_web(
    core: Core, sock: socket.socket, limits: HttpLimits | None = None
) -> GuardedAppRunner:
    """The web role: HTTP on ``sock``, then every feature's background work."""
    app = create_app(core)
    runner = GuardedAppRunner(
        app, limits or HttpLimits.from_settings(core.settings), access_log=None
    )
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=ACCEPT_BATCH)
    await site.start()
    sock.listen(LISTEN_BACKLOG)  # asyncio set the queue to ACCEPT_BATCH
    await start_background(core)
    return runner


async def stop_call(agi: FastAgiServer, drain_seconds: float = DRAIN_SECONDS) -> None:
    """Stop accepting, then give the calls in progress ``drain_seconds`` to finish."""
    await agi.close()
    if not await agi.wait_idle(drain_seconds):
        log.warning("%d call(s) still in progress at shutdown", agi.active_calls)


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


@dataclass
class RunningService:
    """Both roles in this process (tests)."""

    core: Core
    agi: FastAgiServer
    http: web.AppRunner
    agi_port: int
    http_port: int

    async def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        await stop_call(self.agi, drain_seconds)
        await self.http.cleanup()
        await self.core.close()


async def start_service(settings: Settings, migrate: bool = True) -> RunningService:
    """Both roles in this process, on the running loop."""
    if migrate:
        await upgrade_async(settings.database_url)
    agi_sock = bind_listener(settings.agi_host, settings.agi_port)
    http_sock = bind_listener(settings.http_host, settings.http_port)
    core = build_core(settings)
    http = await start_web(core, http_sock)
    agi = await start_call(core, agi_sock)
    running = RunningService(core, agi, http, _port(agi_sock), _port(http_sock))
    log.info(
        "sac-ivr serving FastAGI on %s:%d and HTTP on %s:%d (database %s)",
        settings.agi_host,
        running.agi_port,
        settings.http_host,
        running.http_port,
        core.engine.url.render_as_string(hide_password=True),
    )
    return running


# ------------------------------------------------------------ one role per process
async def run_role(
    role: str,
    settings: Settings,
    sock: socket.socket,
    events: socket.socket,
    ready: Callable[[], None],
) -> None:
    """A child's body under ``sac-ivr serve``: serve ``role`` on ``sock`` until
    SIGTERM, calling ``ready()`` once it serves. ``events`` is this side of the call
    events channel (:mod:`sac_ivr.bridge`)."""
    fd_limit = raise_fd_limit()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    forwarding = forward_call_events(events) if role == CALL_ROLE else None
    core = build_core(settings, live=forwarding)
    if forwarding is not None:
        core.outbox_wakeup.add(forwarding.wake_outbox)
    try:
        if role == CALL_ROLE:
            agi = await start_call(core, sock)
            log.info(
                "call process serving FastAGI on %s:%d (database %s)",
                settings.agi_host,
                _port(sock),
                core.engine.url.render_as_string(hide_password=True),
            )
            ready()
            await stop.wait()
            log.info("stopping: %d call(s) in progress", agi.active_calls)
            await stop_call(agi)
        elif role == WEB_ROLE:
            runner = await start_web(core, sock, http_limits(settings, fd_limit))
            receiver = CallEventReceiver(core, events)
            receiver.start()
            log.info("web process serving HTTP on %s:%d", settings.http_host, _port(sock))
            ready()
            await stop.wait()
            log.info("stopping")
            await receiver.close()
            await runner.cleanup()
        else:
            raise ValueError(f"unknown role {role!r}")
    finally:
        await core.close()
