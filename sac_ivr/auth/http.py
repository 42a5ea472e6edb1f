"""Authentication for HTTP handlers, and the admin's token API.

API clients send ``Authorization: Bearer <token>``. Browsers never hold a token:
``POST /api/v1/session`` trades it for a session id in the HttpOnly ``sac_session``
cookie (browsers' EventSource cannot set headers), which every endpoint accepts in
place of the header.
"""

from __future__ import annotations

from aiohttp import web

from sac_ivr.auth import schemas
from sac_ivr.auth.services import (
    Identity,
    NameInUse,
    TokenError,
    TokenNotFound,
    create_token_row,
    identify,
    identify_session,
    list_tokens,
    live_session_counts,
    revoke_token,
)
from sac_ivr.http.context import core_of
from sac_ivr.http.errors import ApiError, bad_request, not_found
from sac_ivr.http.listing import listing_response, parse_page

COOKIE = "sac_session"
LEGACY_COOKIE = "sac_token"  # held the raw token before sessions: cleared at login/logout

routes = web.RouteTableDef()


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "use 'Authorization: Bearer <token>'")
    return token.strip()


async def optional_identity(request: web.Request) -> Identity | None:
    """Who sent the request: the Bearer token's holder, else the session cookie's;
    None without either; 401 for a token or session that does not (or no longer) work."""
    sessionmaker = core_of(request).reader
    token = bearer_token(request)
    if token is not None:
        identity = await identify(sessionmaker, token)
        if identity is None:
            raise ApiError(401, "unauthorized", "unknown, expired or revoked token")
        return identity
    session_id = request.cookies.get(COOKIE)
    if session_id:
        identity = await identify_session(sessionmaker, session_id)
        if identity is None:
            raise ApiError(401, "unauthorized", "the session expired or ended: log in again")
        return identity
    return None


async def require(request: web.Request, role: str) -> Identity:
    """The caller's identity, or 401 (no/bad token) / 403 (role too low)."""
    identity = await optional_identity(request)
    if identity is None:
        raise ApiError(401, "unauthorized", "this endpoint needs an API token")
    if not identity.has_role(role):
        raise ApiError(403, "forbidden", f"this endpoint needs the {role} role")
    return identity


def listing_role(request: web.Request) -> str:
    """The role a listing of customers' data needs: agents page through it in JSON;
    a bulk CSV export (``format=csv``) is for supervisors."""
    return "supervisor" if request.query.get("format") == "csv" else "agent"


# ------------------------------------------------------------- token admin


@routes.get("/api/v1/tokens")
async def get_tokens(request: web.Request) -> web.Response:
    await require(request, "admin")
    page = parse_page(request)
    raw = request.query.get("all", "").strip().lower()
    if raw not in ("", "true", "false", "1", "0"):
        raise bad_request("all must be true or false", field="all")
    async with core_of(request).reader() as session:
        rows, total = await list_tokens(
            session, include_inactive=raw in ("true", "1"), limit=page.limit, offset=page.offset
        )
        counts = await live_session_counts(session, [r.id for r in rows])
    items = [schemas.token_view(r, counts.get(r.id, 0)) for r in rows]
    return listing_response(page, items, total, schemas.LIST_COLUMNS, "tokens.csv")


@routes.post("/api/v1/tokens")
async def post_token(request: web.Request) -> web.Response:
    await require(request, "admin")
    from sac_ivr.lifecycle.schemas import read_object  # the one JSON-object reader

    fields = schemas.parse_token_body(await read_object(request))
    try:
        token, row = await create_token_row(core_of(request).sessionmaker, **fields)
    except NameInUse as exc:
        raise ApiError(409, "name_in_use", str(exc), field="name") from None
    except TokenError as exc:
        raise bad_request(str(exc), **({"field": exc.field} if exc.field else {})) from None
    body = {**schemas.token_view(row), "token": token}
    return web.json_response(body, status=201, headers={"Cache-Control": "no-store"})


@routes.delete("/api/v1/tokens/{id}")
async def delete_token(request: web.Request) -> web.Response:
    await require(request, "admin")
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise bad_request("the token id is a whole number", field="id")
    try:
        row = await revoke_token(core_of(request).sessionmaker, token_id=int(raw))
    except TokenNotFound:
        raise not_found(f"token {raw} not found") from None
    return web.json_response(schemas.token_view(row))


def setup(app: web.Application) -> None:
    app.add_routes(routes)
