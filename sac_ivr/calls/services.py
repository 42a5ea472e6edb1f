"""Call log queries (the running AMI side is :mod:`sac_ivr.calls.runtime`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, union_all
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
    conditions: list[ColumnElement[bool]] = []
    if flt.since is not None:
        conditions.append(CallLog.started_at >= flt.since)
    if flt.until is not None:
        conditions.append(CallLog.started_at < flt.until)
    if flt.phone_e164:
        conditions.append(CallLog.caller_e164 == flt.phone_e164)
    if flt.protocol:
        conditions.append(CallLog.protocol_number == flt.protocol)
    if flt.outcome:
        conditions.append(CallLog.outcome == flt.outcome)
    if flt.server:
        conditions.append(CallLog.server == flt.server)
    newest_first = (CallLog.started_at.desc(), CallLog.id.desc())
    if flt.agent:
        return await _find_by_agent(session, flt.agent, conditions, limit, offset)
    query = select(CallLog).where(*conditions)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(*newest_first).limit(limit).offset(offset))
    return rows.all(), int(total or 0)


async def _find_by_agent(
    session: AsyncSession,
    agent: str,
    conditions: list[ColumnElement[bool]],
    limit: int,
    offset: int,
) -> tuple[Sequence[CallLog], int]:
    """An agent's calls (member name or interface): the two disjoint halves of the OR,
    each counted and paged from its own (column, started_at) index, then merged."""
    by_name = and_(CallLog.agent_name == agent, *conditions)
    by_interface = and_(
        CallLog.agent_interface == agent,
        or_(CallLog.agent_name.is_(None), CallLog.agent_name != agent),
        *conditions,
    )
    total = 0
    for half in (by_name, by_interface):
        total += int(await session.scalar(select(func.count()).where(half)) or 0)
    newest_first = (CallLog.started_at.desc(), CallLog.id.desc())
    firsts = [
        select(CallLog.id).where(half).order_by(*newest_first).limit(offset + limit).subquery()
        for half in (by_name, by_interface)
    ]
    ids = union_all(*(select(first.c.id) for first in firsts)).subquery()
    rows = await session.scalars(
        select(CallLog)
        .where(CallLog.id.in_(select(ids.c.id)))
        .order_by(*newest_first)
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), total


async def calls_of_protocol(session: AsyncSession, protocol: Protocol) -> Sequence[CallLog]:
    """The calls a protocol was given on or quoted in, oldest first."""
    conditions = [CallLog.protocol_number == protocol.number]
    if protocol.linkedid:
        conditions.append(CallLog.linkedid == protocol.linkedid)
    rows = await session.scalars(
        select(CallLog).where(or_(*conditions)).order_by(CallLog.started_at, CallLog.id)
    )
    return rows.all()
