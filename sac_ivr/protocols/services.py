"""Protocol lookups and the changes the call path makes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from sac_ivr.protocols.tables import PENDING, Protocol


class ProtocolNotFound(LookupError):
    pass


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
        query = query.where(PENDING)  # the partial index's term
    if flt.due_after is not None:
        query = query.where(Protocol.due_at >= flt.due_after)
    if flt.due_before is not None:
        query = query.where(Protocol.due_at < flt.due_before)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(Protocol.issued_at.desc(), Protocol.id.desc()).limit(limit).offset(offset)
    )
    return rows.all(), int(total or 0)
