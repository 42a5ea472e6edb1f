"""HTTP routes of the audit feature (supervisor role): the access log and the
public lookup counts."""

from __future__ import annotations

from aiohttp import web

from sac_ivr.audit import schemas, services
from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import Endpoints

api = Endpoints()


@api.get(
    "/api/v1/access-log",
    summary="Who read customers' personal data, newest first (supervisor)",
    description="Every read of a protocol's record, a listing or search of "
    "protocols or calls, a customer's history and history requests (LGPD art. 37).",
    role="supervisor",
    query_model=schemas.AccessLogQuery,
    response=schemas.AccessLogEntryPage,
    response_description="A page (or CSV with format=csv)",
    csv=schemas.ACCESS_LOG_CSV,
)
async def get_access_log(
    request: web.Request, query: schemas.AccessLogQuery
) -> schemas.AccessLogEntryPage:
    """Who read customers' personal data, newest first (LGPD art. 37)."""
    svc = core_of(request)
    phone_hash, document_hash = await services.search_hashes(svc, query.phone, query.document)
    flt = services.AccessFilter(
        actor=query.actor,
        action=query.action,
        protocol=query.protocol,
        since=query.from_,
        until=query.until,
        phone_hash=phone_hash,
        document_hash=document_hash,
    )
    await services.access_log_of(svc).flush()  # every read made until now
    async with svc.reader() as session:
        found, total = await services.find_accesses(session, flt, query.limit, query.offset)
    items = [schemas.entry_view(entry, numbers) for entry, numbers in found]
    return schemas.AccessLogEntryPage(
        items=items, total=total, limit=query.limit, offset=query.offset
    )


@api.get(
    "/api/v1/public-lookups",
    summary="Public lookups per local day and outcome (supervisor)",
    description="found: the number alone; verified / verify_failed: with a second "
    "factor or signed link; not_found; invalid: a malformed number or factor; limited: "
    "refused by a rate limit (429).",
    role="supervisor",
    query_model=schemas.PublicLookupsQuery,
    response=schemas.PublicLookupDayPage,
    response_description="A page (or CSV with format=csv)",
    csv=schemas.PUBLIC_LOOKUPS_CSV,
)
async def get_public_lookups(
    request: web.Request, query: schemas.PublicLookupsQuery
) -> schemas.PublicLookupDayPage:
    """Public lookups per local day and outcome, newest day first."""
    svc = core_of(request)
    await services.lookup_counters_of(svc).flush()
    async with svc.reader() as session:
        days, total = await services.lookup_counts(
            session, query.from_, query.until, query.limit, query.offset
        )
    items = [schemas.PublicLookupDay.model_validate(day) for day in days]
    return schemas.PublicLookupDayPage(
        items=items, total=total, limit=query.limit, offset=query.offset
    )


def setup(app: web.Application) -> None:
    app.add_routes(api.routes)
