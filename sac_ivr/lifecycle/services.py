"""The agent-facing write API on protocols: field changes and status transitions,
each recorded on the timeline and announced to the customer through the outbox in
the same transaction; due dates set at opening and kept in step with the subject.

``install(core)`` wires the feature into the call path (called once by
``Core.create``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.db.base import utcnow
from sac_ivr.lifecycle import statuses
from sac_ivr.lifecycle.config import LifecycleConfig
from sac_ivr.notifications import services as notices
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.protocols.services import ProtocolNotFound
from sac_ivr.protocols.tables import Protocol, ProtocolEvent

if TYPE_CHECKING:
    from sac_ivr.core import Core
    from sac_ivr.protocols.issuer import RowFiller

log = logging.getLogger(__name__)

EXTRA_KEY = "lifecycle"

# Fields an agent may set with PATCH, in the order they are applied.
EDITABLE_FIELDS = (
    "subject",
    "customer_document",
    "customer_name",
    "customer_email",
    "customer_phone",
    "notes",
    "department",
    "agent",
)
# Recorded on the timeline without their values (personal data stays in one place,
# which retention anonymises).
PERSONAL_FIELDS = {
    "customer_document",
    "customer_name",
    "customer_email",
    "customer_phone",
    "notes",
}


class TransitionNotAllowed(Exception):
    def __init__(self, current: str, target: str) -> None:
        self.current = current
        self.target = target
        self.allowed = list(statuses.allowed_from(current))
        super().__init__(
            f"a protocol in status {current!r} cannot move to {target!r}; allowed: "
            + (", ".join(self.allowed) or "none (final status)")
        )


def lifecycle_of(core: Core) -> LifecycleConfig:
    config = core.extras.get(EXTRA_KEY)
    if config is None:
        config = LifecycleConfig.from_settings(core.settings)
        core.extras[EXTRA_KEY] = config
    return config


def install(core: Core) -> None:
    """Due dates and opening notices inside the issuing transaction; the caller's
    "send me this protocol by SMS" key when SMS is configured."""
    lifecycle_of(core)
    core.issuer.add_row_filler(due_date_filler(core))
    core.issuer.add_hook(notices.opening_hook(core))
    core.issuer.add_after_commit(notices.wake_after_opening(core))
    if notices.sms_enabled(core.settings):

        async def sms_requested(number: str, uniqueid: str | None) -> None:
            await request_protocol_sms(core, number, uniqueid)

        core.sms_requested = sms_requested
    from sac_ivr.history.services import install as install_history  # avoids a cycle

    install_history(core)


def due_date_filler(core: Core) -> RowFiller:
    """Issuer row filler: every new protocol gets its reply deadline in its own row."""

    def fill(row: dict[str, Any]) -> None:
        row["due_at"] = lifecycle_of(core).reply_due(row["issued_at"], None)

    return fill


async def _load_for_update(session: AsyncSession, number: str) -> Protocol:
    protocol = await session.scalar(
        select(Protocol).where(Protocol.number == number).with_for_update()
    )
    if protocol is None:
        raise ProtocolNotFound(number)
    return protocol


@dataclass(frozen=True)
class ChangeResult:
    protocol: Protocol
    changed: list[str]


async def update_protocol(
    core: Core, number: str, changes: dict[str, Any], actor: str
) -> ChangeResult:
    """Apply validated field changes (see ``schemas.parse_changes``); one timeline
    event per field that really changed."""
    config = lifecycle_of(core)
    changed: list[str] = []
    async with core.sessionmaker() as session, session.begin():
        protocol = await _load_for_update(session, number)
        now = utcnow()
        for name in EDITABLE_FIELDS:
            if name not in changes:
                continue
            old, new = getattr(protocol, name), changes[name]
            if old == new:
                continue
            setattr(protocol, name, new)
            changed.append(name)
            data: dict[str, Any] = {"field": name}
            if name not in PERSONAL_FIELDS:
                data.update({"from": old, "to": new})
            if name == "subject" and protocol.status in statuses.PENDING_STATUSES:
                # A nature with another deadline (ANS high complexity) moves the due date.
                due = config.reply_due(protocol.issued_at, new)
                if due != protocol.due_at:
                    data["due_at"] = due.isoformat()
                    protocol.due_at = due
            session.add(
                ProtocolEvent(
                    protocol_id=protocol.id,
                    at=now,
                    actor=actor,
                    kind="field",
                    department=protocol.department,
                    data=data,
                )
            )
        if changed:
            protocol.updated_at = now
        # After every field is set, so a receipt reaches an e-mail given in the same change.
        if "subject" in changed and protocol.subject == "cancellation":
            await register_cancellation(session, core, protocol, actor, now)
    if changed:
        notices.wake_worker(core)
        core.live.publish(
            {"type": "protocol_updated", "number": number, "fields": changed, "actor": actor}
        )
    return ChangeResult(protocol, changed)


# What the caller's menu choice (dialplan ``subject`` route) means for the protocol.
MENU_CHOICES: dict[str, str | None] = {
    "complaint-billing": "complaint",
    "complaint-product": "complaint",
    "cancellation": "cancellation",
    "information": "information",
    "attendant": None,  # went straight to an attendant: subject left for the agent
}


async def record_menu_choice(core: Core, number: str, choice: str, uniqueid: str | None) -> None:
    """The caller's menu choice on the timeline; it sets the subject when none is set
    yet (moving the due date with it), and a cancellation chosen on the phone takes
    effect at once with its receipt (Decreto 6.523 art. 18), as one set by an agent."""
    if choice not in MENU_CHOICES:
        raise ValueError(f"unknown menu choice {choice!r}")
    subject = MENU_CHOICES[choice]
    config = lifecycle_of(core)
    async with core.sessionmaker() as session, session.begin():
        protocol = await _load_for_update(session, number)
        now = utcnow()
        session.add(
            ProtocolEvent(
                protocol_id=protocol.id,
                at=now,
                actor="caller",
                kind="menu_choice",
                data={"choice": choice, "uniqueid": uniqueid},
            )
        )
        if subject and not protocol.subject:
            protocol.subject = subject
            protocol.updated_at = now
            if protocol.status in statuses.PENDING_STATUSES:
                protocol.due_at = config.reply_due(protocol.issued_at, subject)
        if choice == "cancellation":
            await register_cancellation(session, core, protocol, "caller", now)
    if choice == "cancellation":
        notices.wake_worker(core)


async def register_cancellation(
    session: AsyncSession, core: Core, protocol: Protocol, actor: str, now: datetime
) -> None:
    """Decreto 6.523 art. 18: a cancellation takes effect when asked for; the
    customer gets a receipt electronically."""
    event = ProtocolEvent(
        protocol_id=protocol.id,
        at=now,
        actor=actor,
        kind="cancellation_registered",
        customer_note="Pedido de cancelamento registrado com efeito imediato.",
        data={"effective_at": now.isoformat()},
    )
    session.add(event)
    await session.flush()
    await notices.queue_for_protocol(
        session, core, protocol, "cancellation", event_id=event.id, effective_at=now
    )


async def transition(
    core: Core,
    number: str,
    to_status: str,
    actor: str,
    *,
    department: str | None = None,
    customer_note: str | None = None,
    internal_note: str | None = None,
) -> Protocol:
    """Move a protocol to ``to_status`` if allowed from its current status."""
    async with core.sessionmaker() as session, session.begin():
        protocol = await _load_for_update(session, number)
        current = protocol.status
        if to_status not in statuses.allowed_from(current):
            raise TransitionNotAllowed(current, to_status)
        now = utcnow()
        protocol.status = to_status
        protocol.updated_at = now
        if department is not None:
            protocol.department = department
        target = statuses.BY_CODE[to_status]
        if target.answered and protocol.resolved_at is None:
            protocol.resolved_at = now
        elif not target.answered:
            protocol.resolved_at = None  # reopened
        event = ProtocolEvent(
            protocol_id=protocol.id,
            at=now,
            actor=actor,
            kind="status",
            from_status=current,
            to_status=to_status,
            department=protocol.department,
            customer_note=customer_note,
            internal_note=internal_note,
        )
        session.add(event)
        await session.flush()
        if core.settings.notify_status_changes:
            await notices.queue_for_protocol(
                session,
                core,
                protocol,
                "status",
                event_id=event.id,
                customer_note=customer_note,
            )
    notices.wake_worker(core)
    core.live.publish(
        {
            "type": "protocol_status",
            "number": number,
            "from": current,
            "to": to_status,
            "actor": actor,
        }
    )
    return protocol


async def request_protocol_sms(core: Core, number: str, uniqueid: str | None) -> None:
    """The caller pressed 2 ("receber este protocolo por SMS"): queue the SMS to the
    calling number, unless the opening SMS to that number is already queued or sent.
    Never raises: the call goes on whatever happens here."""
    try:
        async with core.sessionmaker() as session, session.begin():
            protocol = await _load_for_update(session, number)
            recipient = notices.sms_recipient(protocol)
            data: dict[str, Any] = {"uniqueid": uniqueid}
            if recipient is None:
                data["result"] = "not_a_mobile"
            else:
                earlier = await session.scalar(
                    select(OutboxMessage.id).where(
                        OutboxMessage.protocol_id == protocol.id,
                        OutboxMessage.channel == "sms",
                        OutboxMessage.recipient == recipient,
                        OutboxMessage.kind.in_(("opened", "sms_request")),
                        OutboxMessage.status != "failed",
                    )
                )
                if earlier is not None:
                    data.update(result="already_queued", outbox_id=earlier)
                else:
                    data["result"] = "queued"
            event = ProtocolEvent(
                protocol_id=protocol.id,
                at=utcnow(),
                actor="caller",
                kind="sms_requested",
                data=data,
            )
            session.add(event)
            await session.flush()
            if data["result"] == "queued":
                await notices.queue_for_protocol(
                    session, core, protocol, "sms_request", event_id=event.id, email=False
                )
        log.info("protocol %s: SMS requested by the caller (%s)", number, data["result"])
        notices.wake_worker(core)
    except Exception:
        log.exception("protocol %s: the caller's SMS request could not be queued", number)
