"""Call log queries (the running AMI side is :mod:`sac_ivr.calls.runtime`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.calls.tables import CallLog
from sac_ivr.protocols.tables import Protocol

log = logging.getLogger(__name__)


# ------------------------------------------------------------------- queries
@dataclass(frozen=True)
class CallFilter:
    since: datetime | None = None  # started at or after
    until: datetime | None = None  # started before
    phone_e164: str | None = None
    protocol: str | None = None
    agent: str | None = None  # member name or interface
    outcome: str | None = None
    server: str | None = None  # the Asterisk server's name


async def find(
    session: AsyncSession, flt: CallFilter, limit: int, offset: int
) -> tuple[Sequence[CallLog], int]:
    """Calls, newest first."""
    query = select(CallLog)
    if flt.since is not None:
        query = query.where(CallLog.started_at >= flt.since)
    if flt.until is not None:
        query = query.where(CallLog.started_at < flt.until)
    if flt.phone_e164:
        query = query.where(CallLog.caller_e164 == flt.phone_e164)
    if flt.protocol:
        query = query.where(CallLog.protocol_number == flt.protocol)
    if flt.agent:
        query = query.where(
            or_(CallLog.agent_name == flt.agent, CallLog.agent_interface == flt.agent)
        )
    if flt.outcome:
        query = query.where(CallLog.outcome == flt.outcome)
    if flt.server:
        query = query.where(CallLog.server == flt.server)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(CallLog.started_at.desc(), CallLog.id.desc()).limit(limit).offset(offset)
    )
    return rows.all(), int(total or 0)


async def calls_of_protocol(session: AsyncSession, protocol: Protocol) -> Sequence[CallLog]:
    """The calls a protocol was given on or quoted in, oldest first."""
    conditions = [CallLog.protocol_number == protocol.number]
    if protocol.linkedid:
        conditions.append(CallLog.linkedid == protocol.linkedid)
    rows = await session.scalars(
        select(CallLog).where(or_(*conditions)).order_by(CallLog.started_at, CallLog.id)
    )
    return rows.all()
