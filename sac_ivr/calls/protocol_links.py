"""What a call changes in the protocols feature's tables, in two phases.

* :func:`plan_links` (read-only session): ties calls and protocols together. A call
  without a number takes the one issued on it (the protocol whose ``linkedid`` is
  the call's, or whose ``uniqueid``, the AGI channel's, is one of its legs); a
  protocol without a ``linkedid`` will get its call's; when an agent answers, the
  protocol will name that agent (if no one is named yet) and its timeline will say
  who answered and when, once per call. Returns the writes to do.
* :func:`write_links` (the writer's short write transaction): does them, with
  conditional UPDATEs (``... WHERE linkedid IS NULL``), so that a protocol changed
  between the two phases is never overwritten.

A protocol not committed yet when its call's events are stored is found by a later
event of the same call. The "answered" entry goes on the timeline through its one
writer, :func:`sac_ivr.protocols.timeline.record`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.calls.tables import CallLog
from sac_ivr.protocols import timeline
from sac_ivr.protocols.tables import Protocol
from sac_ivr.protocols.timeline import EventKind

CHUNK = 400  # stay under SQLite's bound-parameter limit


@dataclass(frozen=True)
class AgentAnswer:
    """An agent answered the call of this protocol."""

    protocol_id: int
    at: datetime
    agent: str
    data: dict[str, Any]


@dataclass
class LinkWrites:
    """What :func:`write_links` writes: protocol number -> the call's linkedid, and
    the answers to record."""

    linkedids: dict[str, str] = field(default_factory=dict)
    answers: list[AgentAnswer] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.linkedids or self.answers)


async def plan_links(session: AsyncSession, rows: Iterable[CallLog]) -> LinkWrites:
    """Read what is needed and mark the rows; see the module docstring."""
    rows = list(rows)
    await _find_protocol_numbers(session, rows)
    numbers = sorted({row.protocol_number for row in rows if row.protocol_number})
    existing: dict[str, int] = {}
    for start in range(0, len(numbers), CHUNK):
        found = await session.execute(
            select(Protocol.number, Protocol.id).where(
                Protocol.number.in_(numbers[start : start + CHUNK])
            )
        )
        existing.update({number: pk for number, pk in found})
    writes = LinkWrites()
    for row in rows:
        number = row.protocol_number
        if not number or number not in existing:
            continue  # not committed yet: the next event of this call tries again
        if row.state.get("protocol_linked") != number:
            writes.linkedids[number] = row.linkedid
            row.state = {**row.state, "protocol_linked": number}
        agent = row.agent_name or row.agent_interface
        if row.answered_at and agent and row.state.get("answer_recorded") != number:
            writes.answers.append(
                AgentAnswer(
                    protocol_id=existing[number],
                    at=row.answered_at,
                    agent=agent,
                    data={
                        "agent": agent,
                        "agent_interface": row.agent_interface,
                        "queue": row.queue,
                        "linkedid": row.linkedid,
                    },
                )
            )
            row.state = {**row.state, "answer_recorded": number}
    return writes


async def _find_protocol_numbers(session: AsyncSession, rows: list[CallLog]) -> None:
    """A call without a number takes the one issued on it (see the module docstring)."""
    missing: dict[str, CallLog] = {}
    for row in rows:
        if row.protocol_number is None:
            missing[row.linkedid] = row
            missing.update({uid: row for uid in row.state["legs"]})
    if not missing:
        return
    keys = list(missing)[:CHUNK]
    found = await session.execute(
        select(Protocol.number, Protocol.uniqueid, Protocol.linkedid)
        .where(or_(Protocol.uniqueid.in_(keys), Protocol.linkedid.in_(keys)))
        .order_by(Protocol.issued_at, Protocol.id)
    )
    for number, uniqueid, linkedid in found:
        call = missing.get(linkedid or "") or missing.get(uniqueid or "")
        if call is not None and call.protocol_number is None:
            call.protocol_number = number


async def write_links(session: AsyncSession, writes: LinkWrites) -> None:
    """Inside the writer's write transaction: the planned writes, no reads."""
    for number, linkedid in writes.linkedids.items():
        await session.execute(
            update(Protocol)
            .where(Protocol.number == number, Protocol.linkedid.is_(None))
            .values(linkedid=linkedid)
        )
    for answer in writes.answers:
        await session.execute(
            update(Protocol)
            .where(Protocol.id == answer.protocol_id, Protocol.agent.is_(None))
            .values(agent=answer.agent[:64])
        )
        timeline.record(
            session,
            answer.protocol_id,
            EventKind.ANSWERED,
            actor="system",
            at=answer.at,
            data=answer.data,
        )
