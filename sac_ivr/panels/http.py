"""HTTP routes of the panels: the pages, their static files, the login session and
the live event stream (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from pathlib import Path

from aiohttp import web

from sac_ivr.auth.http import COOKIE, require
from sac_ivr.auth.services import identify
from sac_ivr.http.context import services_of
from sac_ivr.http.errors import ApiError, not_found
from sac_ivr.panels import schemas
from sac_ivr.panels.services import LiveView, live_messages

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/panels/static/"
STATIC_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# What a static file's name can be: a folder or none, then a plain name (a NUL, a
# "..", or a name longer than the file system allows is a 404, never a 500).
STATIC_NAME = re.compile(r"(?:[A-Za-z0-9_-]{1,64}/)?[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
SSE_RETRY_MS = 3000

# The pages load nothing from elsewhere and run no inline script.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the URL carries a protocol number
    "X-Content-Type-Options": "nosniff",
}


class LiveStreams:
    """The open event streams, so that shutdown can end them instead of waiting."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()


LIVE_STREAMS_KEY: web.AppKey[LiveStreams] = web.AppKey("panels_live_streams", LiveStreams)


def setup(app: web.Application) -> None:
    """Register the panels' routes and end their event streams at shutdown."""
    app[LIVE_STREAMS_KEY] = LiveStreams()
    app.add_routes(routes)

    async def end_streams(app: web.Application) -> None:
        app[LIVE_STREAMS_KEY].stop.set()

    app.on_shutdown.append(end_streams)


# ------------------------------------------------------------------ pages


def page(name: str) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / name, headers=dict(PAGE_HEADERS))


@routes.get("/agent")
async def agent_page(request: web.Request) -> web.StreamResponse:
    return page("agent.html")


@routes.get("/agent/calls/{protocol}")
async def agent_call_page(request: web.Request) -> web.StreamResponse:
    """The screen pop (``X-SAC-URL``): the agent panel, opened on that protocol."""
    return page("agent.html")


@routes.get("/supervisor")
async def supervisor_page(request: web.Request) -> web.StreamResponse:
    return page("supervisor.html")


@routes.get(STATIC_PREFIX + "{name:.+}")
async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if not STATIC_NAME.fullmatch(name):
        raise not_found("no such file")
    root = STATIC_DIR.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file() or path.suffix not in STATIC_TYPES:
        raise not_found(f"no such file: {name}")
    headers = {
        "Content-Type": STATIC_TYPES[path.suffix],
        "Cache-Control": "no-cache",  # revalidated (ETag/Last-Modified): fresh after upgrades
        "X-Content-Type-Options": "nosniff",
    }
    return web.FileResponse(path, headers=headers)


# ---------------------------------------------------------------- session


@routes.post("/api/v1/session")
async def create_session(request: web.Request) -> web.Response:
    """Log a browser in: check the token, keep it in an HttpOnly cookie."""
    token = schemas.parse_session_body(await schemas.read_json(request))
    services = services_of(request)
    identity = await identify(services.sessionmaker, token)
    if identity is None:
        raise ApiError(401, "unauthorized", "unknown or revoked token")
    response = web.json_response(schemas.viewer_view(identity))
    settings = services.settings
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.panels_session_hours * 3600),
        path="/",
        httponly=True,
        samesite="Strict",  # the cookie never rides on another site's request
        secure=request.secure or settings.base_url.startswith("https://"),
    )
    return response


@routes.get("/api/v1/session")
async def get_session(request: web.Request) -> web.Response:
    identity = await require(request, "agent")
    return web.json_response(schemas.viewer_view(identity))


@routes.delete("/api/v1/session")
async def delete_session(request: web.Request) -> web.Response:
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    return response


# ------------------------------------------------------------------- live


@routes.get("/api/v1/live/snapshot")
async def live_snapshot(request: web.Request) -> web.Response:
    view = schemas.parse_view(request)
    identity = await require(request, view)
    live = LiveView(services_of(request), identity, view)
    return web.json_response(await live.snapshot(), dumps=schemas.dumps)


@routes.get("/api/v1/live/events")
async def live_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: ``snapshot`` first, then ``call``/``call_removed``/``queue``/
    ``queue_removed`` changes and a ``heartbeat`` when idle. A reconnecting browser
    simply gets a fresh snapshot, so no event ids are needed."""
    view = schemas.parse_view(request)
    identity = await require(request, view)
    services = services_of(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-transform",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    await response.prepare(request)
    await response.write(f"retry: {SSE_RETRY_MS}\n\n".encode())
    stop = request.app[LIVE_STREAMS_KEY].stop
    heartbeat_s = services.settings.panels_heartbeat_s
    messages = live_messages(services, identity, view, heartbeat_s, stop)
    try:
        async with contextlib.aclosing(messages):
            async for event, data in messages:
                await response.write(f"event: {event}\ndata: {schemas.dumps(data)}\n\n".encode())
    except (ConnectionResetError, ConnectionError):
        log.debug("live stream of %s closed by the browser", identity.name)
    return response
