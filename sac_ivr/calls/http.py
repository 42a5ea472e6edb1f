"""HTTP routes of the calls feature, and its section of a protocol's agent view."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.audit.services import record_read
from sac_ivr.auth.http import listing_role, require
from sac_ivr.calls import schemas, services
from sac_ivr.http.context import core_of
from sac_ivr.http.listing import listing_response, parse_page
from sac_ivr.protocols.http import DETAIL_SECTIONS_KEY
from sac_ivr.protocols.tables import Protocol

routes = web.RouteTableDef()


@routes.get("/api/v1/calls")
async def list_calls(request: web.Request) -> web.Response:
    identity = await require(request, listing_role(request))
    page = parse_page(request)
    flt = schemas.parse_filter(request)
    async with core_of(request).reader() as session:
        rows, total = await services.find(session, flt, page.limit, page.offset)
        items = [schemas.call_view(c) for c in rows]
    await record_read(
        request,
        identity,
        "calls.list",
        protocols=[i.get("protocol") for i in items],
        phone=flt.phone_e164,
        rows=len(items),
    )
    return listing_response(page, items, total, schemas.LIST_COLUMNS, "calls.csv")


async def protocol_calls_section(
    request: web.Request, session: AsyncSession, protocol: Protocol
) -> list[dict[str, Any]]:
    """The ``calls`` section of ``GET /api/v1/protocols/{number}`` (agent view)."""
    return [schemas.call_view(c) for c in await services.calls_of_protocol(session, protocol)]


def setup(app: web.Application) -> None:
    """Add the routes and the protocol detail section to the application."""
    app.add_routes(routes)
    sections = app.get(DETAIL_SECTIONS_KEY)
    if sections is None:
        sections = app[DETAIL_SECTIONS_KEY] = {}
    sections["calls"] = protocol_calls_section
