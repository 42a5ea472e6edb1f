"""The aiohttp application: the features' routes, errors as JSON, health."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aiohttp import web, web_response

from sac_ivr.core import Core
from sac_ivr.http import health
from sac_ivr.http.context import CORE_KEY
from sac_ivr.http.csrf import csrf_middleware
from sac_ivr.http.errors import error_middleware
from sac_ivr.http.inputs import input_middleware

# A feature's HTTP setup(app): its routes, plus anything it adds to others (the call
# log adds a "calls" section to a protocol, the panels end their streams at shutdown).
HttpSetup = Callable[[web.Application], None]

# Sent instead of aiohttp's "Python/3.x aiohttp/3.y": no versions for scanners.
SERVER_HEADER = "sac-ivr"
# Outermost first: every error becomes JSON; then what no handler should see
# (NUL, undecodable bytes, non-ASCII credentials); then forged browser writes.
MIDDLEWARES = (error_middleware, input_middleware, csrf_middleware)


async def _neutral_server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_HEADER


def _neutral_default_server_header() -> None:
    """The answers aiohttp writes itself to a request it cannot parse (a 400 before
    any handler or signal) take the module's default: make that neutral too. The
    signal above covers every other answer even if aiohttp renames this."""
    if isinstance(getattr(web_response, "SERVER_SOFTWARE", None), str):
        web_response.SERVER_SOFTWARE = SERVER_HEADER


def create_app(core: Core, feature_setups: Iterable[HttpSetup]) -> web.Application:
    """The app with health, the OpenAPI document and the features' routes (all of
    them: :func:`sac_ivr.features.create_app`)."""
    app = web.Application(middlewares=list(MIDDLEWARES), client_max_size=256 * 1024)
    app.on_response_prepare.append(_neutral_server_header)
    _neutral_default_server_header()
    app[CORE_KEY] = core
    health.setup(app)
    for setup in feature_setups:
        setup(app)
    return app
