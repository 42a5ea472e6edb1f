"""HTTP routes of the history feature."""

from __future__ import annotations

from aiohttp import web

from sac_ivr.audit.services import record_read
from sac_ivr.auth.http import listing_role, require
from sac_ivr.auth.services import Identity
from sac_ivr.db.base import utcnow
from sac_ivr.history import document, schemas, services
from sac_ivr.http.context import core_of
from sac_ivr.http.errors import ApiError, not_found
from sac_ivr.http.inputs import read_object
from sac_ivr.http.listing import listing_response, parse_page
from sac_ivr.lifecycle.services import lifecycle_of

routes = web.RouteTableDef()


async def _document_response(
    request: web.Request,
    phone: str | None,
    doc: str | None,
    fmt: str,
    identity: Identity,
    action: str,
) -> web.Response:
    svc = core_of(request)
    config = lifecycle_of(svc)
    async with svc.reader() as session:
        history = await services.build_history(
            session, config, svc.settings.company_name, phone=phone, document_number=doc
        )
    await record_read(
        request,
        identity,
        action,
        protocols=[p.get("number") for p in history.get("protocols") or ()],
        phone=phone,
        document=doc,
    )
    if fmt == "html":
        return web.Response(text=document.render_html(history, config.tz), content_type="text/html")
    return web.json_response(history)


@routes.get("/api/v1/history")
async def get_history(request: web.Request) -> web.Response:
    identity = await require(request, "agent")
    fmt = schemas.parse_format(request)
    customer = schemas.parse_customer(request.query, from_body=False)
    return await _document_response(
        request, customer.phone, customer.document, fmt, identity, "history.read"
    )


@routes.post("/api/v1/history-requests")
async def create_history_request(request: web.Request) -> web.Response:
    identity = await require(request, "agent")
    svc = core_of(request)
    body = schemas.parse_request_body(await read_object(request), svc.protocol_format)
    try:
        created = await services.create_request(svc, identity.name, **body)
    except LookupError as exc:
        raise not_found(str(exc)) from None
    return web.json_response(schemas.request_view(created), status=201)


@routes.get("/api/v1/history-requests")
async def list_history_requests(request: web.Request) -> web.Response:
    identity = await require(request, listing_role(request))
    page = parse_page(request)
    flags = schemas.parse_list_flags(request)
    async with core_of(request).reader() as session:
        rows, total = await services.list_requests(
            session,
            pending_only=flags["pending"],
            overdue_at=utcnow() if flags["overdue"] else None,
            limit=page.limit,
            offset=page.offset,
        )
        items = [schemas.request_view(r) for r in rows]
    await record_read(request, identity, "history_requests.list", rows=len(items))
    return listing_response(page, items, total, schemas.LIST_COLUMNS, "history-requests.csv")


@routes.get("/api/v1/history-requests/{id}")
async def get_history_request(request: web.Request) -> web.Response:
    identity = await require(request, "agent")
    request_id = schemas.parse_request_id(request)
    async with core_of(request).reader() as session:
        try:
            found = await services.get_request(session, request_id)
        except services.HistoryRequestNotFound:
            raise not_found(f"history request {request_id} not found") from None
    await record_read(request, identity, "history_request.read", rows=1)
    return web.json_response(schemas.request_view(found))


@routes.get("/api/v1/history-requests/{id}/document")
async def get_history_request_document(request: web.Request) -> web.Response:
    identity = await require(request, "agent")
    request_id = schemas.parse_request_id(request)
    fmt = schemas.parse_format(request)
    async with core_of(request).reader() as session:
        try:
            found = await services.get_request(session, request_id)
        except services.HistoryRequestNotFound:
            raise not_found(f"history request {request_id} not found") from None
    if found.anonymised_at is not None:
        raise ApiError(410, "anonymised", "this request's customer data was anonymised")
    return await _document_response(
        request, found.phone_e164, found.document, fmt, identity, "history_request.document"
    )


@routes.post("/api/v1/history-requests/{id}/delivered")
async def deliver_history_request(request: web.Request) -> web.Response:
    identity = await require(request, "agent")
    request_id = schemas.parse_request_id(request)
    via = schemas.parse_delivered_body(await read_object(request))
    try:
        done = await services.mark_delivered(core_of(request), request_id, via, identity.name)
    except services.HistoryRequestNotFound:
        raise not_found(f"history request {request_id} not found") from None
    except services.AlreadyDelivered:
        raise ApiError(
            409, "already_delivered", f"history request {request_id} was already delivered"
        ) from None
    return web.json_response(schemas.request_view(done))


def setup(app: web.Application) -> None:
    app.add_routes(routes)
