"""The aiohttp application: every feature's routes, errors as JSON, health."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web, web_response
from sqlalchemy import text

from sac_ivr import __version__
from sac_ivr.audit import http as audit_http
from sac_ivr.auth import http as auth_http
from sac_ivr.calls import http as calls_http
from sac_ivr.core import Core
from sac_ivr.history import http as history_http
from sac_ivr.http.context import CORE_KEY, core_of
from sac_ivr.http.csrf import csrf_middleware
from sac_ivr.http.errors import RETRY_AFTER_S, error_middleware
from sac_ivr.http.inputs import input_middleware
from sac_ivr.http.openapi import build_openapi
from sac_ivr.lifecycle import http as lifecycle_http
from sac_ivr.notifications import http as notifications_http
from sac_ivr.panels import http as panels_http
from sac_ivr.protocols import http as protocols_http
from sac_ivr.reports import http as reports_http

# Every feature's http.py has setup(app): its routes, plus anything it adds to others
# (the call log adds a "calls" section to a protocol, the panels end their streams
# at shutdown).
FEATURE_HTTP = (
    protocols_http,
    lifecycle_http,
    history_http,
    reports_http,
    notifications_http,
    calls_http,
    panels_http,
    auth_http,
    audit_http,
)

STARTED_KEY: web.AppKey[float] = web.AppKey("started", float)
HEALTH_DB_TIMEOUT_S = 2.0
# Sent instead of aiohttp's "Python/3.x aiohttp/3.y": no versions for scanners.
SERVER_HEADER = "sac-ivr"
# Outermost first: every error becomes JSON; then what no handler should see
# (NUL, undecodable bytes, non-ASCII credentials); then forged browser writes.
MIDDLEWARES = (error_middleware, input_middleware, csrf_middleware)

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    core = core_of(request)
    body = {
        "status": "ok",
        "version": __version__,
        "uptime_s": round(time.monotonic() - request.app[STARTED_KEY], 1),
        "database": "ok",
    }
    try:
        async with asyncio.timeout(HEALTH_DB_TIMEOUT_S):
            async with core.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception as exc:
        body["status"] = "degraded"
        body["database"] = f"unavailable: {type(exc).__name__}"
        return web.json_response(body, status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
    return web.json_response(body)


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_openapi())


async def _neutral_server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_HEADER


def _neutral_default_server_header() -> None:
    """The answers aiohttp writes itself to a request it cannot parse (a 400 before
    any handler or signal) take the module's default: make that neutral too. The
    signal above covers every other answer even if aiohttp renames this."""
    if isinstance(getattr(web_response, "SERVER_SOFTWARE", None), str):
        web_response.SERVER_SOFTWARE = SERVER_HEADER  # type: ignore[attr-defined]


def create_app(core: Core) -> web.Application:
    app = web.Application(middlewares=list(MIDDLEWARES), client_max_size=256 * 1024)
    app.on_response_prepare.append(_neutral_server_header)
    _neutral_default_server_header()
    app[CORE_KEY] = core
    app[STARTED_KEY] = time.monotonic()
    app.add_routes(routes)
    for feature in FEATURE_HTTP:
        feature.setup(app)
    return app
