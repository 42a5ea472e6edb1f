"""HTTP routes of the panels: the pages, their static files, the login session and
the live event stream (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from pathlib import Path

from aiohttp import web

from sac_ivr.auth import services as auth_services
from sac_ivr.auth.http import COOKIE, LEGACY_COOKIE, optional_identity
from sac_ivr.auth.ratelimit import too_many_requests
from sac_ivr.auth.services import Identity, identify
from sac_ivr.core import Core
from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import Endpoints
from sac_ivr.http.errors import ApiError, not_found
from sac_ivr.panels import schemas
from sac_ivr.panels.services import LiveView, live_messages

log = logging.getLogger(__name__)

api = Endpoints()
HTML_PAGE = {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}

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
STREAM_RETRY_AFTER_S = 30

# The pages load nothing from elsewhere and run no inline script.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the URL carries a protocol number
    "X-Content-Type-Options": "nosniff",
}


class LiveStreams:
    """The open event streams: shutdown ends them instead of waiting, and each token
    holds at most ``panels_max_streams_per_token`` of them."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.per_token: dict[object, int] = {}

    def open(self, identity: Identity, cap: int) -> bool:
        key = identity.token_id if identity.token_id is not None else identity.name
        if self.per_token.get(key, 0) >= cap:
            return False
        self.per_token[key] = self.per_token.get(key, 0) + 1
        return True

    def close(self, identity: Identity) -> None:
        key = identity.token_id if identity.token_id is not None else identity.name
        left = self.per_token.get(key, 0) - 1
        if left > 0:
            self.per_token[key] = left
        else:
            self.per_token.pop(key, None)


LIVE_STREAMS_KEY: web.AppKey[LiveStreams] = web.AppKey("panels_live_streams", LiveStreams)


def setup(app: web.Application) -> None:
    """Register the panels' routes and end their event streams at shutdown."""
    app[LIVE_STREAMS_KEY] = LiveStreams()
    app.add_routes(api.routes)

    async def end_streams(app: web.Application) -> None:
        app[LIVE_STREAMS_KEY].stop.set()

    app.on_shutdown.append(end_streams)


# ------------------------------------------------------------------ pages


def page(name: str) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / name, headers=dict(PAGE_HEADERS))


@api.get(
    "/agent",
    summary="Agent panel (HTML)",
    description="Live calls on the agent's extension and the queue; asks for a "
    "token when the browser has no session.",
    raw_responses={200: HTML_PAGE},
)
async def agent_page(request: web.Request) -> web.StreamResponse:
    return page("agent.html")


@api.get(
    "/agent/calls/{protocol}",
    summary="Agent panel opened on one protocol (screen pop, X-SAC-URL)",
    path_model=schemas.ProtocolPagePath,
    raw_responses={200: HTML_PAGE},
)
async def agent_call_page(request: web.Request) -> web.StreamResponse:
    """The screen pop (``X-SAC-URL``): the agent panel, opened on that protocol."""
    return page("agent.html")


@api.get(
    "/supervisor",
    summary="Supervisor view (HTML)",
    description="Queues, waiting calls against the legal limit, agents.",
    raw_responses={200: HTML_PAGE},
)
async def supervisor_page(request: web.Request) -> web.StreamResponse:
    return page("supervisor.html")


@api.get(
    STATIC_PREFIX + "{name:.+}",
    summary="The panels' scripts, styles and images",
    path_model=schemas.StaticPath,
    raw_responses={200: {"description": "The file (text/javascript, text/css, ...)"}},
    errors=(404,),
)
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


@api.post(
    "/api/v1/session",
    summary="Log a browser in",
    description="Checks the token and opens a server-side session: its random "
    "id (never the token) goes in the HttpOnly, SameSite=Strict cookie sac_session, "
    "which every endpoint accepts in place of the header. The session ends after "
    "panels_session_hours, at logout, or when the token is revoked or expires.",
    body_model=schemas.SessionBody,
    body_reader="json",
    response=schemas.Viewer,
    response_description="Logged in; Set-Cookie: sac_session",
    errors=(401,),
)
async def create_session(request: web.Request, body: schemas.SessionBody) -> web.Response:
    """Log a browser in: check the token, open a server-side session and put its id
    (never the token) in an HttpOnly cookie."""
    token = body.token
    core = core_of(request)
    identity = await identify(core.reader, token)
    if identity is None:
        raise ApiError(401, "unauthorized", "unknown, expired or revoked token")
    settings = core.settings
    previous = request.cookies.get(COOKIE)
    if previous:  # logging in again (another token) ends this browser's last session
        await auth_services.end_session(core.sessionmaker, previous)
    session_id, _ = await auth_services.create_session(
        core.sessionmaker, identity, settings.panels_session_hours
    )
    response = web.json_response(schemas.Viewer(**schemas.viewer_view(identity)).model_dump())
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(settings.panels_session_hours * 3600),
        path="/",
        httponly=True,
        samesite="Strict",  # the cookie never rides on another site's request
        secure=request.secure or settings.base_url.startswith("https://"),
    )
    if LEGACY_COOKIE in request.cookies:
        response.del_cookie(LEGACY_COOKIE, path="/")
    return response


@api.get(
    "/api/v1/session",
    summary="Who is logged in",
    role="agent",
    response=schemas.Viewer,
    response_description="The viewer",
)
async def get_session(request: web.Request, identity: Identity) -> schemas.Viewer:
    return schemas.Viewer(**schemas.viewer_view(identity))


@api.delete(
    "/api/v1/session",
    summary="Log out: the session ends on the server and the cookie is cleared",
    raw_responses={204: {"description": "Logged out"}},
)
async def delete_session(request: web.Request) -> web.Response:
    """Log out: the session ends on the server (a copy of the cookie no longer works)
    and the browser drops its cookie."""
    session_id = request.cookies.get(COOKIE)
    if session_id:
        await auth_services.end_session(core_of(request).sessionmaker, session_id)
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    if LEGACY_COOKIE in request.cookies:
        response.del_cookie(LEGACY_COOKIE, path="/")
    return response


# ------------------------------------------------------------------- live


@api.get(
    "/api/v1/live/snapshot",
    summary="Calls and queues now, as the viewer may see them",
    role=schemas.parse_view,  # the view asked for is the role needed
    query_model=schemas.ViewQuery,
    response=schemas.LiveSnapshot,
    response_description="The state",
)
async def live_snapshot(
    request: web.Request, identity: Identity, query: schemas.ViewQuery
) -> web.Response:
    """The tracker's state as this viewer may see it (schemas.LiveSnapshot), written
    compactly: a panel polls it."""
    live = LiveView(core_of(request), identity, query.view)
    return web.json_response(await live.snapshot(), dumps=schemas.dumps)


@api.get(
    "/api/v1/live/events",
    summary="Live calls and queues (Server-Sent Events)",
    description="Event `snapshot` (a LiveSnapshot) first, then `call` "
    "(`{server_time, call: LiveCall}`), `call_removed` (`{server_time, server, linkedid}`), "
    "`queue` (`{server_time, queue: LiveQueue}`), `queue_removed` "
    "(`{server_time, name}`), `link` (`{server_time, ami_connected}`: the AMI link "
    "went down or up), and `heartbeat` (`{server_time}`) every "
    "panels_heartbeat_s seconds when nothing happens. A reconnecting client gets "
    "a new snapshot. Browsers authenticate with the sac_session cookie; the stream "
    "ends within a heartbeat of a logout or of the token's revocation. At most "
    "panels_max_streams_per_token streams per token (429 with Retry-After beyond).",
    role=schemas.parse_view,
    query_model=schemas.ViewQuery,
    raw_responses={
        200: {
            "description": "The event stream",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
    },
    errors=(429,),
    error_descriptions={429: "Too many streams open for this token"},
)
async def live_events(
    request: web.Request, identity: Identity, query: schemas.ViewQuery
) -> web.StreamResponse:
    """Server-Sent Events: ``snapshot`` first, then ``call``/``call_removed``/``queue``/
    ``queue_removed`` changes and a ``heartbeat`` when idle. A reconnecting browser
    simply gets a fresh snapshot, so no event ids are needed."""
    view = query.view
    core = core_of(request)
    streams = request.app[LIVE_STREAMS_KEY]
    cap = core.settings.panels_max_streams_per_token
    if not streams.open(identity, cap):
        return too_many_requests(
            "too_many_streams",
            f"this token already has {cap} live streams open; close one (another tab)",
            STREAM_RETRY_AFTER_S,
        )
    try:
        return await _stream(request, core, identity, view, streams.stop)
    finally:
        streams.close(identity)


async def _stream(
    request: web.Request, core: Core, identity: Identity, view: str, stop: asyncio.Event
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-transform",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    await response.prepare(request)
    await response.write(f"retry: {SSE_RETRY_MS}\n\n".encode())
    heartbeat_s = core.settings.panels_heartbeat_s
    messages = live_messages(core, identity, view, heartbeat_s, stop)
    loop = asyncio.get_running_loop()
    checked = loop.time()
    try:
        async with contextlib.aclosing(messages):
            async for event, data in messages:
                await response.write(f"event: {event}\ndata: {schemas.dumps(data)}\n\n".encode())
                if loop.time() - checked >= heartbeat_s:
                    # A stream outlives no logout, revocation or expiry by more than a
                    # heartbeat: the browser reconnects, gets a 401, shows the login.
                    checked = loop.time()
                    if not await _still_allowed(request, view):
                        break
    except (ConnectionResetError, ConnectionError):
        log.debug("a live stream was closed by the browser")
    return response


async def _still_allowed(request: web.Request, view: str) -> bool:
    try:
        identity = await optional_identity(request)
    except ApiError:
        return False
    except Exception:  # database unreachable: keep the stream, check again later
        return True
    return identity is not None and identity.has_role(view)
