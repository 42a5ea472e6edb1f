"""HTTP routes of the protocols feature."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.audit.services import record_read
from sac_ivr.auth.http import listing_role, optional_identity
from sac_ivr.auth.services import Identity
from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import Endpoints
from sac_ivr.http.errors import bad_request, not_found
from sac_ivr.http.openapi import Section, document_section
from sac_ivr.protocols import public, schemas, services
from sac_ivr.protocols.numbering import InvalidProtocolNumber
from sac_ivr.protocols.tables import Protocol

api = Endpoints()

# Extra sections of the agent view of one protocol, added by other features with
# add_detail_section (the call log adds "calls"): name -> async fn(request, session,
# protocol) -> JSON value.
DetailSection = Callable[[web.Request, AsyncSession, Protocol], Awaitable[Any]]
DETAIL_SECTIONS_KEY: web.AppKey[dict[str, DetailSection]] = web.AppKey(
    "protocol_detail_sections", dict
)


def add_detail_section(
    app: web.Application, name: str, section: DetailSection, shape: Any, description: str
) -> None:
    """Another feature adds ``name`` to the agent view of one protocol: its value
    (``section``) and, in the OpenAPI document, its shape (a type pydantic describes)."""
    app.setdefault(DETAIL_SECTIONS_KEY, {})[name] = section
    document_section(app, Section(schemas.ProtocolAgent, name, shape, description))


def validated_number(request: web.Request) -> str:
    number = request.match_info["number"]
    try:
        return core_of(request).protocol_format.validate(number)
    except InvalidProtocolNumber as exc:
        raise bad_request(str(exc), code="invalid_protocol_number") from None


@api.get(
    "/api/v1/protocols/{number}",
    summary="Look a protocol up",
    description="Without a token: the status and the dates to the day (no "
    "subject, no personal data); the subject and the customer's notes with a second "
    "factor (verify) or a signed link (expires, signature). Limited per client "
    "address (public_lookups_per_hour; wrong second factors much more tightly) and "
    "counted. With an agent token: the full record, its timeline and its calls "
    "(ProtocolAgent), recorded in the access log.",
    auth=True,
    path_model=schemas.NumberPath,
    query_model=schemas.LookupQuery,
    response=schemas.ProtocolAnswer,
    response_description="The protocol",
    errors=(401, 403, 404, 429),
    error_descriptions={
        403: "The second factor or link does not match",
        429: "Too many lookups (Retry-After says when)",
    },
)
async def get_protocol(request: web.Request) -> web.Response | schemas.ProtocolAnswer:
    """With a token: the whole record (logged in the access log). Without one: the
    public lookup, limited and counted (see protocols/public.py)."""
    identity = await optional_identity(request)
    if identity is None:
        answer = await public.lookup(request, request.match_info["number"])
        if isinstance(answer, schemas.ProtocolPublic):
            return schemas.ProtocolAnswer(answer)
        return answer  # refused: limited, or the factor does not match
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
    return schemas.ProtocolAnswer(schemas.ProtocolAgent.model_validate(body))


@api.get(
    "/api/v1/protocols",
    summary="A customer's protocols, newest first",
    role=listing_role,
    query_model=schemas.ProtocolQuery,
    response=schemas.ProtocolPage,
    response_description="A page (or CSV with format=csv)",
    csv=schemas.PROTOCOLS_CSV,
)
async def list_protocols(
    request: web.Request, identity: Identity, query: schemas.ProtocolQuery
) -> schemas.ProtocolPage:
    flt = query.to_filter()
    async with core_of(request).reader() as session:
        rows, total = await services.find(session, flt, query.limit, query.offset)
        items = [schemas.ProtocolAgent.model_validate(schemas.agent_view(p)) for p in rows]
    await record_read(
        request,
        identity,
        "protocols.list",
        protocols=[p.number for p in rows],
        phone=flt.phone_e164,
        document=flt.document,
    )
    return schemas.ProtocolPage(items=items, total=total, limit=query.limit, offset=query.offset)


def setup(app: web.Application) -> None:
    app.add_routes(api.routes)
