"""Forged writes: a browser request that changes something must come from our own
pages.

The panels keep the token in the ``sac_token`` cookie (HttpOnly, SameSite=Strict).
SameSite stops other *sites*, but a page on another port of the same host is the
same site: the browser sends the cookie along with its requests. So every write
(POST, PUT, PATCH, DELETE) that does not carry ``Authorization: Bearer`` (a header
no other origin can make a browser send without a CORS preflight, which this service
never grants) must

1. come from our own origin: ``Sec-Fetch-Site: same-origin`` where the browser sends
   it, else an ``Origin`` equal to this service's (the request's own scheme and Host,
   or ``public_base_url``). A cookie-carrying write with neither is refused too: every
   browser in use sends one of them on writes; other clients use the header;
2. carry a JSON body (``Content-Type: application/json``) when it has one: an HTML
   form cannot send that, and ``fetch`` from another origin cannot either without a
   preflight.

Refusals: 403 ``cross_origin_refused``, 415 ``unsupported_media_type``. A
``sac_token`` cookie that is not printable ASCII (no token is) is a 400 that clears it.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from sac_ivr.http.context import SESSION_COOKIE as COOKIE
from sac_ivr.http.context import core_of
from sac_ivr.http.errors import ApiError, Handler, error_response
from sac_ivr.http.inputs import header_ascii, is_json_media_type, printable_ascii

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def _loggable(value: str | None) -> str:
    """A header value fit for a log line: printable ASCII, short."""
    if value is None:
        return "-"
    return "".join(c if " " <= c <= "~" else "?" for c in value[:100])


def origin_of(url: str) -> str | None:
    """``scheme://host:port`` (port always written, host in lower case), or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


def own_origins(request: web.Request) -> set[str]:
    """Where our pages are served from: this request's scheme and Host, and the
    configured public URL (a TLS proxy in front changes the scheme)."""
    origins = set()
    for url in (f"{request.scheme}://{request.host}", core_of(request).settings.base_url):
        origin = origin_of(url)
        if origin:
            origins.add(origin)
    return origins


def same_origin(request: web.Request) -> bool:
    fetch_site = header_ascii(request, "Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() == "same-origin"
    origin = header_ascii(request, hdrs.ORIGIN)
    if origin is None:
        return False
    return origin_of(origin) in own_origins(request)


def check_browser_write(request: web.Request) -> None:
    """Raise 403/415 for a write the browser's cookie would authenticate but that did
    not come, as JSON, from our own pages."""
    if request.method in SAFE_METHODS:
        return
    authorization = header_ascii(request, hdrs.AUTHORIZATION) or ""
    if authorization[:7].lower() == "bearer ":
        return  # a header no other origin can make the browser send
    from_browser = COOKIE in request.cookies or any(
        name in request.headers for name in (hdrs.ORIGIN, "Sec-Fetch-Site")
    )
    if not from_browser:
        return  # no ambient credential: the handler's own checks (401) apply
    if not same_origin(request):
        log.warning(
            "refused a browser write from another origin: %s %s (Origin %s, Sec-Fetch-Site %s)",
            request.method,
            request.path,
            _loggable(request.headers.get(hdrs.ORIGIN)),
            _loggable(request.headers.get("Sec-Fetch-Site")),
        )
        raise ApiError(
            403,
            "cross_origin_refused",
            "writes from a browser must come from this service's own pages",
        )
    if request.body_exists and not is_json_media_type(request):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    cookie = request.cookies.get(COOKIE)
    if cookie is not None and not printable_ascii(cookie):
        # A token is ASCII: answer 400 and drop the cookie, so the panel can log in again.
        response = error_response(
            400, "invalid_request", f"the {COOKIE} cookie is malformed", field=COOKIE
        )
        response.del_cookie(COOKIE, path="/")
        return response
    check_browser_write(request)
    return await handler(request)
