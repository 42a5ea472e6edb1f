"""HTTP routes of the lifecycle feature: the agent panel's write API on protocols."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.auth.http import require
from sac_ivr.auth.services import Identity, is_active_name
from sac_ivr.http.context import core_of
from sac_ivr.http.errors import ApiError, bad_request, not_found
from sac_ivr.lifecycle import schemas, services
from sac_ivr.protocols import schemas as protocol_schemas
from sac_ivr.protocols import services as protocol_services
from sac_ivr.protocols.http import DETAIL_SECTIONS_KEY, validated_number
from sac_ivr.protocols.tables import Protocol

routes = web.RouteTableDef()


async def agent_detail(request: web.Request, session: AsyncSession, number: str) -> dict:
    """The same body as ``GET /api/v1/protocols/{number}`` with a token."""
    protocol: Protocol | None = await protocol_services.get_by_number(
        session, number, with_events=True
    )
    if protocol is None:
        raise not_found(f"protocol {number} not found")
    body = protocol_schemas.agent_view(protocol)
    body["events"] = [protocol_schemas.event_view(e) for e in protocol.events]
    for name, section in request.app.get(DETAIL_SECTIONS_KEY, {}).items():
        body[name] = await section(request, session, protocol)
    return body


async def check_assignee(request: web.Request, identity: Identity, agent: str | None) -> None:
    """Who a protocol may be assigned to (its ``agent``): an agent takes it for
    themselves only; a supervisor assigns it to the holder of an active token, or to
    nobody. The author of the change is always the token's holder."""
    if not identity.has_role("supervisor"):
        if agent != identity.name:
            raise ApiError(
                403,
                "forbidden",
                "an agent may only assign a protocol to themselves; a supervisor assigns it "
                "to others",
                field="agent",
            )
        return
    if agent is None:
        return
    async with core_of(request).reader() as session:
        if not await is_active_name(session, agent):
            raise bad_request(f"no active token is named {agent!r}", field="agent")


@routes.patch("/api/v1/protocols/{number}")
async def patch_protocol(request: web.Request) -> web.Response:
    identity = await require(request, "agent")
    number = validated_number(request)
    svc = core_of(request)
    changes = schemas.parse_changes(await schemas.read_object(request), services.lifecycle_of(svc))
    if "agent" in changes:
        await check_assignee(request, identity, changes["agent"])
    try:
        await services.update_protocol(svc, number, changes, identity.name)
    except protocol_services.ProtocolNotFound:
        raise not_found(f"protocol {number} not found") from None
    async with svc.reader() as session:
        return web.json_response(await agent_detail(request, session, number))


@routes.post("/api/v1/protocols/{number}/transitions")
async def post_transition(request: web.Request) -> web.Response:
    identity = await require(request, "agent")
    number = validated_number(request)
    svc = core_of(request)
    body = schemas.parse_transition(await schemas.read_object(request), services.lifecycle_of(svc))
    try:
        await services.transition(
            svc,
            number,
            body["to_status"],
            identity.name,
            department=body.get("department"),
            customer_note=body.get("customer_note"),
            internal_note=body.get("internal_note"),
        )
    except protocol_services.ProtocolNotFound:
        raise not_found(f"protocol {number} not found") from None
    except services.TransitionNotAllowed as exc:
        raise ApiError(
            409,
            "transition_not_allowed",
            str(exc),
            current_status=exc.current,
            to_status=exc.target,
            allowed=exc.allowed,
        ) from None
    async with svc.reader() as session:
        return web.json_response(await agent_detail(request, session, number))


@routes.get("/api/v1/lifecycle")
async def get_lifecycle(request: web.Request) -> web.Response:
    await require(request, "agent")
    return web.json_response(services.lifecycle_of(core_of(request)).as_dict())


def setup(app: web.Application) -> None:
    app.add_routes(routes)
