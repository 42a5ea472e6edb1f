"""HTTP routes of the notifications feature: the outbox for supervisors, and the
"notifications" section of a protocol's agent view."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.db.base import utcnow
from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import Endpoints
from sac_ivr.http.errors import ApiError, not_found
from sac_ivr.notifications import schemas
from sac_ivr.notifications import services as outbox
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.protocols.http import add_detail_section
from sac_ivr.protocols.tables import Protocol

api = Endpoints()


@api.get(
    "/api/v1/notifications",
    summary="The notification outbox, newest first",
    role="supervisor",
    query_model=schemas.NotificationQuery,
    response=schemas.NotificationPage,
    response_description="A page (or CSV with format=csv)",
    csv=schemas.NOTIFICATIONS_CSV,
)
async def list_notifications(
    request: web.Request, query: schemas.NotificationQuery
) -> schemas.NotificationPage:
    select_rows = select(OutboxMessage)
    if query.status:
        select_rows = select_rows.where(OutboxMessage.status == query.status)
    if query.channel:
        select_rows = select_rows.where(OutboxMessage.channel == query.channel)
    async with core_of(request).reader() as session:
        total = await session.scalar(select(func.count()).select_from(select_rows.subquery()))
        rows = await session.scalars(
            select_rows.order_by(OutboxMessage.id.desc()).limit(query.limit).offset(query.offset)
        )
        items = [schemas.outbox_view(m) for m in rows]
    return schemas.NotificationPage(
        items=items, total=int(total or 0), limit=query.limit, offset=query.offset
    )


@api.post(
    "/api/v1/notifications/{id}/retry",
    summary="Send a failed notification again (a fresh series of attempts)",
    role="supervisor",
    path_model=schemas.NotificationPath,
    response=schemas.Notification,
    response_description="Queued again",
    errors=(404, 409),
)
async def retry_notification(
    request: web.Request, path: schemas.NotificationPath
) -> schemas.Notification:
    """A failed notice gets a fresh series of attempts (after fixing an address or the
    provider's settings)."""
    svc = core_of(request)
    async with svc.sessionmaker() as session, session.begin():
        row = await session.get(OutboxMessage, path.id, with_for_update=True)
        if row is None:
            raise not_found(f"notification {path.id} not found")
        if row.status != "failed":
            raise ApiError(409, "not_failed", f"notification {path.id} is {row.status}, not failed")
        row.status = "pending"
        row.attempts = 0
        row.next_attempt_at = utcnow()
        row.last_error = None
        body = schemas.outbox_view(row)
    outbox.wake_worker(svc)
    return body


async def notifications_section(
    request: web.Request, session: AsyncSession, protocol: Protocol
) -> list[dict[str, Any]]:
    rows = await outbox.notifications_of(session, protocol.id)
    return [schemas.outbox_view(m, protocol.number).model_dump(mode="json") for m in rows]


def setup(app: web.Application) -> None:
    app.add_routes(api.routes)
    add_detail_section(
        app,
        "notifications",
        notifications_section,
        list[schemas.Notification],
        "The SMS and e-mails sent about this protocol, and their results (agent view only)",
    )
