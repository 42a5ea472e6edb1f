"""Authentication for HTTP handlers: ``Authorization: Bearer <token>``.

Browsers' EventSource/WebSocket cannot set headers, so the panel may also send the
token in the ``sac_token`` cookie.
"""

from __future__ import annotations

from aiohttp import web

from sac_ivr.auth.services import Identity, identify
from sac_ivr.http.context import services_of
from sac_ivr.http.errors import ApiError

COOKIE = "sac_token"


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "use 'Authorization: Bearer <token>'")
        return token.strip()
    return request.cookies.get(COOKIE)


async def optional_identity(request: web.Request) -> Identity | None:
    token = bearer_token(request)
    if token is None:
        return None
    identity = await identify(services_of(request).reader, token)
    if identity is None:
        raise ApiError(401, "unauthorized", "unknown or revoked token")
    return identity


async def require(request: web.Request, role: str) -> Identity:
    """The caller's identity, or 401 (no/bad token) / 403 (role too low)."""
    identity = await optional_identity(request)
    if identity is None:
        raise ApiError(401, "unauthorized", "this endpoint needs an API token")
    if not identity.has_role(role):
        raise ApiError(403, "forbidden", f"this endpoint needs the {role} role")
    return identity
