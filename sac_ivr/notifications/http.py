"""HTTP routes of the notifications feature: the outbox for supervisors, and the
"notifications" section of a protocol's agent view."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.auth.http import require
from sac_ivr.db.base import utcnow
from sac_ivr.http.context import core_of
from sac_ivr.http.errors import ApiError, not_found
from sac_ivr.http.inputs import path_int
from sac_ivr.http.listing import listing_response, parse_page
from sac_ivr.notifications import schemas
from sac_ivr.notifications import services as outbox
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.protocols.http import DETAIL_SECTIONS_KEY
from sac_ivr.protocols.tables import Protocol

routes = web.RouteTableDef()


@routes.get("/api/v1/notifications")
async def list_notifications(request: web.Request) -> web.Response:
    await require(request, "supervisor")
    page = parse_page(request)
    flt = schemas.parse_filter(request)
    query = select(OutboxMessage)
    if flt.status:
        query = query.where(OutboxMessage.status == flt.status)
    if flt.channel:
        query = query.where(OutboxMessage.channel == flt.channel)
    async with core_of(request).reader() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.scalars(
            query.order_by(OutboxMessage.id.desc()).limit(page.limit).offset(page.offset)
        )
        items = [schemas.outbox_view(m) for m in rows]
    return listing_response(page, items, int(total or 0), schemas.LIST_COLUMNS, "notifications.csv")


@routes.post("/api/v1/notifications/{id}/retry")
async def retry_notification(request: web.Request) -> web.Response:
    """A failed notice gets a fresh series of attempts (after fixing an address or the
    provider's settings)."""
    await require(request, "supervisor")
    raw = path_int(request, "id")
    svc = core_of(request)
    async with svc.sessionmaker() as session, session.begin():
        row = await session.get(OutboxMessage, raw, with_for_update=True)
        if row is None:
            raise not_found(f"notification {raw} not found")
        if row.status != "failed":
            raise ApiError(409, "not_failed", f"notification {raw} is {row.status}, not failed")
        row.status = "pending"
        row.attempts = 0
        row.next_attempt_at = utcnow()
        row.last_error = None
        body = schemas.outbox_view(row)
    outbox.wake_worker(svc)
    return web.json_response(body)


async def notifications_section(
    request: web.Request, session: AsyncSession, protocol: Protocol
) -> list[dict[str, Any]]:
    rows = await outbox.notifications_of(session, protocol.id)
    return [schemas.outbox_view(m, protocol.number) for m in rows]


def setup(app: web.Application) -> None:
    app.add_routes(routes)
    app.setdefault(DETAIL_SECTIONS_KEY, {})["notifications"] = notifications_section
