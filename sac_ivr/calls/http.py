"""HTTP routes of the calls feature, and its section of a protocol's agent view."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.audit.services import record_read
from sac_ivr.auth.http import listing_role
from sac_ivr.auth.services import Identity
from sac_ivr.calls import schemas, services
from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import Endpoints
from sac_ivr.protocols.http import add_detail_section
from sac_ivr.protocols.tables import Protocol

api = Endpoints()


@api.get(
    "/api/v1/calls",
    summary="The call log, newest first (JSON page or CSV)",
    role=listing_role,
    query_model=schemas.CallQuery,
    response=schemas.CallPage,
    response_description="A page (or CSV with format=csv)",
    csv=schemas.CALLS_CSV,
)
async def list_calls(
    request: web.Request, identity: Identity, query: schemas.CallQuery
) -> schemas.CallPage:
    flt = query.to_filter()
    async with core_of(request).reader() as session:
        rows, total = await services.find(session, flt, query.limit, query.offset)
        items = [schemas.call_model(c) for c in rows]
    await record_read(
        request,
        identity,
        "calls.list",
        protocols=[i.protocol for i in items],
        phone=flt.phone_e164,
        rows=len(items),
    )
    return schemas.CallPage(items=items, total=total, limit=query.limit, offset=query.offset)


async def protocol_calls_section(
    request: web.Request, session: AsyncSession, protocol: Protocol
) -> list[dict[str, Any]]:
    """The ``calls`` section of ``GET /api/v1/protocols/{number}`` (agent view)."""
    return [schemas.call_view(c) for c in await services.calls_of_protocol(session, protocol)]


def setup(app: web.Application) -> None:
    """Add the routes and the protocol detail section to the application."""
    app.add_routes(api.routes)
    add_detail_section(
        app,
        "calls",
        protocol_calls_section,
        list[schemas.Call],
        "The calls this protocol was given on (call log, agent view only)",
    )
