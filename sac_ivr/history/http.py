"""HTTP routes of the history feature."""

from __future__ import annotations

from aiohttp import web

from sac_ivr.audit.services import record_read
from sac_ivr.auth.http import listing_role
from sac_ivr.auth.services import Identity
from sac_ivr.db.base import utcnow
from sac_ivr.history import document, schemas, services
from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import Endpoints
from sac_ivr.http.errors import ApiError, not_found
from sac_ivr.lifecycle.services import lifecycle_of

api = Endpoints()


async def _document_response(
    request: web.Request,
    phone: str | None,
    doc: str | None,
    fmt: str,
    identity: Identity,
    action: str,
) -> web.Response | schemas.History:
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
    return schemas.History.model_validate(history)


@api.get(
    "/api/v1/history",
    summary="A customer's history of demands (JSON or printable HTML)",
    role="agent",
    query_model=schemas.HistoryQuery,
    response=schemas.History,
    response_description="The history",
    alternate_content=schemas.HTML_CONTENT,
)
async def get_history(
    request: web.Request, identity: Identity, query: schemas.HistoryQuery
) -> web.Response | schemas.History:
    return await _document_response(
        request, query.phone, query.document, query.format, identity, "history.read"
    )


@api.post(
    "/api/v1/history-requests",
    summary="Register a customer's request for their history (tracked to its deadline)",
    role="agent",
    body_model=schemas.HistoryRequestBody,
    response=schemas.HistoryRequest,
    status=201,
    response_description="Registered",
    errors=(404,),
)
async def create_history_request(
    request: web.Request, identity: Identity, body: schemas.HistoryRequestBody
) -> schemas.HistoryRequest:
    svc = core_of(request)
    try:
        created = await services.create_request(
            svc,
            identity.name,
            phone=body.phone,
            document_number=body.document,
            delivery=body.delivery,
            email=body.email,
            protocol_number=body.protocol,
        )
    except LookupError as exc:
        raise not_found(str(exc)) from None
    return schemas.request_view(created)


@api.get(
    "/api/v1/history-requests",
    summary="History requests, soonest due first",
    role=listing_role,
    query_model=schemas.ListFlagsQuery,
    response=schemas.HistoryRequestPage,
    response_description="A page (or CSV with format=csv)",
    csv=schemas.HISTORY_REQUESTS_CSV,
)
async def list_history_requests(
    request: web.Request, identity: Identity, query: schemas.ListFlagsQuery
) -> schemas.HistoryRequestPage:
    async with core_of(request).reader() as session:
        rows, total = await services.list_requests(
            session,
            pending_only=query.pending,
            overdue_at=utcnow() if query.overdue else None,
            limit=query.limit,
            offset=query.offset,
        )
        items = [schemas.request_view(r) for r in rows]
    await record_read(request, identity, "history_requests.list", rows=len(items))
    return schemas.HistoryRequestPage(
        items=items, total=total, limit=query.limit, offset=query.offset
    )


@api.get(
    "/api/v1/history-requests/{id}",
    summary="One history request",
    role="agent",
    path_model=schemas.RequestPath,
    response=schemas.HistoryRequest,
    response_description="The request",
    errors=(404,),
)
async def get_history_request(
    request: web.Request, identity: Identity, path: schemas.RequestPath
) -> schemas.HistoryRequest:
    async with core_of(request).reader() as session:
        try:
            found = await services.get_request(session, path.id)
        except services.HistoryRequestNotFound:
            raise not_found(f"history request {path.id} not found") from None
    await record_read(request, identity, "history_request.read", rows=1)
    return schemas.request_view(found)


@api.get(
    "/api/v1/history-requests/{id}/document",
    summary="The history of the request's customer, as of now",
    role="agent",
    path_model=schemas.RequestPath,
    query_model=schemas.FormatQuery,
    response=schemas.History,
    response_description="The history",
    alternate_content=schemas.HTML_CONTENT,
    errors=(404, 410),
    error_descriptions={410: "The customer's data was anonymised"},
)
async def get_history_request_document(
    request: web.Request,
    identity: Identity,
    path: schemas.RequestPath,
    query: schemas.FormatQuery,
) -> web.Response | schemas.History:
    async with core_of(request).reader() as session:
        try:
            found = await services.get_request(session, path.id)
        except services.HistoryRequestNotFound:
            raise not_found(f"history request {path.id} not found") from None
    if found.anonymised_at is not None:
        raise ApiError(410, "anonymised", "this request's customer data was anonymised")
    return await _document_response(
        request,
        found.phone_e164,
        found.document,
        query.format,
        identity,
        "history_request.document",
    )


@api.post(
    "/api/v1/history-requests/{id}/delivered",
    summary="Record that the history reached the customer (mail, in person, ...)",
    role="agent",
    path_model=schemas.RequestPath,
    body_model=schemas.DeliveredBody,
    response=schemas.HistoryRequest,
    response_description="Delivered",
    errors=(404, 409),
)
async def deliver_history_request(
    request: web.Request,
    identity: Identity,
    path: schemas.RequestPath,
    body: schemas.DeliveredBody,
) -> schemas.HistoryRequest:
    request_id = path.id
    try:
        done = await services.mark_delivered(core_of(request), request_id, body.via, identity.name)
    except services.HistoryRequestNotFound:
        raise not_found(f"history request {request_id} not found") from None
    except services.AlreadyDelivered:
        raise ApiError(
            409, "already_delivered", f"history request {request_id} was already delivered"
        ) from None
    return schemas.request_view(done)


def setup(app: web.Application) -> None:
    app.add_routes(api.routes)
