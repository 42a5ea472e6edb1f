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
from sac_ivr.http.context import SESSION_COOKIE, core_of
from sac_ivr.http.endpoints import AUTHORIZE_KEY, Endpoints
from sac_ivr.http.errors import ApiError, bad_request, not_found

COOKIE = SESSION_COOKIE
LEGACY_COOKIE = "sac_token"  # held the raw token before sessions: cleared at login/logout

api = Endpoints()


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


@api.get(
    "/api/v1/tokens",
    summary="API tokens, newest first (admin)",
    role="admin",
    query_model=schemas.TokenQuery,
    response=schemas.TokenPage,
    response_description="A page (or CSV with format=csv)",
    csv=schemas.TOKENS_CSV,
)
async def get_tokens(request: web.Request, query: schemas.TokenQuery) -> schemas.TokenPage:
    async with core_of(request).reader() as session:
        rows, total = await list_tokens(
            session, include_inactive=query.all, limit=query.limit, offset=query.offset
        )
        counts = await live_session_counts(session, [r.id for r in rows])
    items = [schemas.token_model(r, counts.get(r.id, 0)) for r in rows]
    return schemas.TokenPage(items=items, total=total, limit=query.limit, offset=query.offset)


@api.post(
    "/api/v1/tokens",
    summary="Create a token (admin); the answer shows it once",
    role="admin",
    body_model=schemas.TokenBody,
    response=schemas.NewToken,
    status=201,
    response_description="Created",
    headers={"Cache-Control": "no-store"},
    errors=(409,),
)
async def post_token(request: web.Request, body: schemas.TokenBody) -> schemas.NewToken:
    try:
        token, row = await create_token_row(
            core_of(request).sessionmaker,
            name=body.name,
            role=body.role,
            extension=body.extension,
            expires_at=body.expires_at,
        )
    except NameInUse as exc:
        raise ApiError(409, "name_in_use", str(exc), field="name") from None
    except TokenError as exc:
        raise bad_request(str(exc), **({"field": exc.field} if exc.field else {})) from None
    return schemas.NewToken(**dict(schemas.token_model(row)), token=token)


@api.delete(
    "/api/v1/tokens/{id}",
    summary="Revoke a token (admin): it and its panel sessions stop working at once",
    role="admin",
    path_model=schemas.TokenPath,
    response=schemas.Token,
    response_description="Revoked (or already was)",
    errors=(404,),
)
async def delete_token(request: web.Request, path: schemas.TokenPath) -> schemas.Token:
    try:
        row = await revoke_token(core_of(request).sessionmaker, token_id=path.id)
    except TokenNotFound:  # the id as the client wrote it
        raise not_found(f"token {request.match_info['id']} not found") from None
    return schemas.token_model(row)


def setup(app: web.Application) -> None:
    app[AUTHORIZE_KEY] = require  # the role check of every declared endpoint
    app.add_routes(api.routes)
