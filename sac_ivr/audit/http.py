"""HTTP routes of the audit feature (supervisor role): the access log and the
public lookup counts."""

from __future__ import annotations

from aiohttp import web

from sac_ivr.audit import schemas, services
from sac_ivr.auth.http import require
from sac_ivr.http.context import core_of
from sac_ivr.http.listing import listing_response, parse_page

routes = web.RouteTableDef()


@routes.get("/api/v1/access-log")
async def get_access_log(request: web.Request) -> web.Response:
    """Who read customers' personal data, newest first (LGPD art. 37)."""
    await require(request, "supervisor")
    page = parse_page(request)
    svc = core_of(request)
    params = schemas.parse_access_filter(request, svc.protocol_format)
    phone_hash, document_hash = await services.search_hashes(
        svc, params.pop("phone"), params.pop("document")
    )
    flt = services.AccessFilter(**params, phone_hash=phone_hash, document_hash=document_hash)
    await services.access_log_of(svc).flush()  # every read made until now
    async with svc.reader() as session:
        found, total = await services.find_accesses(session, flt, page.limit, page.offset)
    items = [schemas.entry_view(entry, numbers) for entry, numbers in found]
    return listing_response(page, items, total, schemas.LIST_COLUMNS, "access-log.csv")


@routes.get("/api/v1/public-lookups")
async def get_public_lookups(request: web.Request) -> web.Response:
    """Public lookups per local day and outcome, newest day first."""
    await require(request, "supervisor")
    page = parse_page(request)
    since = schemas.parse_day(request.query.get("from"), "from")
    until = schemas.parse_day(request.query.get("until"), "until")
    svc = core_of(request)
    await services.lookup_counters_of(svc).flush()
    async with svc.reader() as session:
        items, total = await services.lookup_counts(session, since, until, page.limit, page.offset)
    return listing_response(page, items, total, schemas.COUNT_COLUMNS, "public-lookups.csv")


def setup(app: web.Application) -> None:
    app.add_routes(routes)
