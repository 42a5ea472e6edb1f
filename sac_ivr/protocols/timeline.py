"""The protocol timeline: the kinds of event it holds and the one place that writes them.

Every ``ProtocolEvent`` row is made here, by ``record`` (one event in an ORM session)
or by ``INSERT_OPENED_EVENTS`` (the "opened" events of a batch of newly issued
protocols, as one statement on the issuer's hot path). Other modules may read the
table freely. The kinds are stored as their plain string values, so the rows written
before this enumeration existed read the same.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.db.base import utcnow
from sac_ivr.protocols.tables import Protocol, ProtocolEvent


class EventKind(StrEnum):
    """What happened to a protocol. The values are stored in ``protocol_events.kind``
    (at most 32 characters); the history document describes each one
    (``history/event_text.py``) and the agent panel names each one (``agent.js``)."""

    OPENED = "opened"  # the number was issued (to_status "open")
    MENU_CHOICE = "menu_choice"  # the caller's choice in the menu; data.choice
    ANSWERED = "answered"  # the call log: an agent took the call; data.agent
    STATUS = "status"  # a transition; from_status, to_status, department, notes
    FIELD = "field"  # one field changed by an agent; data.field (+ from/to)
    CANCELLATION_REGISTERED = "cancellation_registered"  # Decreto 6.523 art. 18
    SMS_REQUESTED = "sms_requested"  # the caller pressed 2; data.result
    NOTIFICATION_SENT = "notification_sent"  # an outbox message delivered
    NOTIFICATION_FAILED = "notification_failed"  # an outbox message given up on
    HISTORY_REQUESTED = "history_requested"  # history of demands asked for
    ANONYMISED = "anonymised"  # retention removed the personal data


def record(
    session: AsyncSession,
    protocol_id: int,
    kind: EventKind,
    *,
    actor: str,
    at: datetime | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    department: str | None = None,
    customer_note: str | None = None,
    internal_note: str | None = None,
    data: dict[str, Any] | None = None,
) -> ProtocolEvent:
    """Add one event to the session (flush it to read its id) and return it.

    ``customer_note`` is what the customer is told; ``internal_note`` is for agents
    only. A kind outside ``EventKind`` raises ``ValueError``.
    """
    event = ProtocolEvent(
        protocol_id=protocol_id,
        at=at if at is not None else utcnow(),
        actor=actor,
        kind=EventKind(kind).value,
        from_status=from_status,
        to_status=to_status,
        department=department,
        customer_note=customer_note,
        internal_note=internal_note,
        data=data,
    )
    session.add(event)
    return event


# The "opened" event of every protocol whose number is in ``numbers``, dated at its
# issue. Built once: constructing statements per batch was a visible share of the
# issuer's CPU.
INSERT_OPENED_EVENTS = insert(ProtocolEvent.__table__).from_select(
    ["protocol_id", "at", "actor", "kind", "to_status"],
    select(
        Protocol.id,
        Protocol.issued_at,
        literal("system"),
        literal(EventKind.OPENED.value),
        literal("open"),
    ).where(Protocol.number.in_(bindparam("numbers", expanding=True))),
)
