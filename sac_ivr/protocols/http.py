"""HTTP routes of the protocols feature."""

from __future__ import annotations

from aiohttp import web

from sac_ivr.audit.services import record_read
from sac_ivr.auth.http import listing_role, optional_identity, require
from sac_ivr.http.context import core_of
from sac_ivr.http.errors import bad_request, not_found
from sac_ivr.http.listing import listing_response, parse_page
from sac_ivr.protocols import public, schemas, services
from sac_ivr.protocols.numbering import InvalidProtocolNumber

routes = web.RouteTableDef()

# Extra sections of the agent view of one protocol, added by other features
# (e.g. the call log adds "calls"): name -> async fn(request, protocol) -> JSON value.
DETAIL_SECTIONS_KEY: web.AppKey[dict] = web.AppKey("protocol_detail_sections", dict)


def validated_number(request: web.Request) -> str:
    number = request.match_info["number"]
    try:
        return core_of(request).protocol_format.validate(number)
    except InvalidProtocolNumber as exc:
        raise bad_request(str(exc), code="invalid_protocol_number") from None


@routes.get("/api/v1/protocols/{number}")
async def get_protocol(request: web.Request) -> web.Response:
    """With a token: the whole record (logged in the access log). Without one: the
    public lookup, limited and counted (see protocols/public.py)."""
    identity = await optional_identity(request)
    if identity is None:
        return await public.lookup(request, request.match_info["number"])
    number = validated_number(request)  # before any database work
    async with core_of(request).reader() as session:
        protocol = await services.get_by_number(session, number, with_events=True)
        if protocol is None:
            raise not_found(f"protocol {number} not found")
        body = schemas.agent_view(protocol)
        body["events"] = [schemas.event_view(e) for e in protocol.events]
        for name, section in request.app.get(DETAIL_SECTIONS_KEY, {}).items():
            body[name] = await section(request, session, protocol)
    await record_read(request, identity, "protocol.read", protocols=[number])
    return web.json_response(body)


@routes.get("/api/v1/protocols")
async def list_protocols(request: web.Request) -> web.Response:
    identity = await require(request, listing_role(request))
    page = parse_page(request)
    flt = schemas.parse_filter(request)
    async with core_of(request).reader() as session:
        rows, total = await services.find(session, flt, page.limit, page.offset)
        items = [schemas.agent_view(p) for p in rows]
    await record_read(
        request,
        identity,
        "protocols.list",
        protocols=[p.number for p in rows],
        phone=flt.phone_e164,
        document=flt.document,
    )
    return listing_response(page, items, total, schemas.LIST_COLUMNS, "protocols.csv")


def setup(app: web.Application) -> None:
    app.add_routes(routes)
