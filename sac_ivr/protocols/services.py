"""Protocol lookups and the changes the call path makes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from sac_ivr.db.base import utcnow
from sac_ivr.lifecycle.statuses import PENDING_STATUSES
from sac_ivr.protocols.models import Protocol, ProtocolEvent
from sac_ivr.services import Services


class ProtocolNotFound(LookupError):
    pass


# What the caller's menu choice (dialplan ``subject`` route) means for the protocol.
MENU_CHOICES: dict[str, str | None] = {
    "complaint-billing": "complaint",
    "complaint-product": "complaint",
    "cancellation": "cancellation",
    "information": "information",
    "attendant": None,  # went straight to an attendant: subject left for the agent
}


@dataclass(frozen=True)
class ProtocolFilter:
    phone_e164: str | None = None
    document: str | None = None
    status: str | None = None
    # Deadline filters (lifecycle): only requests not yet answered, due in [after, before).
    pending_only: bool = False
    due_after: datetime | None = None
    due_before: datetime | None = None


async def get_by_number(
    session: AsyncSession, number: str, with_events: bool = False
) -> Protocol | None:
    query = select(Protocol).where(Protocol.number == number)
    if with_events:
        query = query.options(selectinload(Protocol.events))
    return await session.scalar(query)


async def find(
    session: AsyncSession, flt: ProtocolFilter, limit: int, offset: int
) -> tuple[Sequence[Protocol], int]:
    """A customer's protocols, newest first."""
    query = select(Protocol)
    if flt.phone_e164:
        query = query.where(
            or_(Protocol.caller_e164 == flt.phone_e164, Protocol.customer_phone == flt.phone_e164)
        )
    if flt.document:
        query = query.where(Protocol.customer_document == flt.document)
    if flt.status:
        query = query.where(Protocol.status == flt.status)
    if flt.pending_only:
        query = query.where(Protocol.status.in_(PENDING_STATUSES))
    if flt.due_after is not None:
        query = query.where(Protocol.due_at >= flt.due_after)
    if flt.due_before is not None:
        query = query.where(Protocol.due_at < flt.due_before)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(Protocol.issued_at.desc(), Protocol.id.desc()).limit(limit).offset(offset)
    )
    return rows.all(), int(total or 0)


async def record_menu_choice(
    services: Services, number: str, choice: str, uniqueid: str | None
) -> None:
    """Store the caller's menu choice on the protocol's timeline (and its subject)."""
    if choice not in MENU_CHOICES:
        raise ValueError(f"unknown menu choice {choice!r}")
    async with services.sessionmaker() as session, session.begin():
        protocol = await get_by_number(session, number)
        if protocol is None:
            raise ProtocolNotFound(number)
        subject = MENU_CHOICES[choice]
        now = utcnow()
        data = {"choice": choice, "uniqueid": uniqueid}
        if choice == "cancellation":
            # Decreto 6.523 art. 18: the cancellation takes effect when asked for.
            data["effective_at"] = now.isoformat()
        session.add(
            ProtocolEvent(
                protocol_id=protocol.id, at=now, actor="caller", kind="menu_choice", data=data
            )
        )
        if subject and not protocol.subject:
            protocol.subject = subject
            protocol.updated_at = now
