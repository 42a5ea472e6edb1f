"""Queueing notices in the outbox (inside the caller's transaction) and the outbox's
state machine: claim with a lease, record the result on the protocol's timeline.

Guarantees:

- A notice exists iff the change it announces was committed: both are written in
  one transaction (the issuing transaction for openings, the change's otherwise).
- A claimed row is ``sending`` with ``lease_until``; a process killed mid-send
  leaves it so, and any worker takes it again once the lease expired, with the same
  ``key`` (e-mail Message-ID, SMS idempotency key). Claims use ``FOR UPDATE SKIP
  LOCKED`` on PostgreSQL, so several workers never take the same row; SQLite
  serialises writers (BEGIN IMMEDIATE).
- Failures are retried with exponential backoff up to ``outbox_max_attempts``, then
  the row is ``failed`` and a ``notification_failed`` event is on the timeline.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, bindparam, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sac_ivr.db.base import utcnow
from sac_ivr.notifications import templates
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.phones import is_mobile, mask_phone
from sac_ivr.protocols.tables import Protocol, ProtocolEvent

if TYPE_CHECKING:
    from sac_ivr.config import Settings
    from sac_ivr.core import Core
    from sac_ivr.lifecycle.config import LifecycleConfig
    from sac_ivr.protocols.issuer import IssuedProtocol

log = logging.getLogger(__name__)

# kind -> async fn(session, row, delivered) run in the transaction that records the
# result (e.g. the history feature marks its request delivered).
DeliveryHook = Callable[[AsyncSession, OutboxMessage, bool], Awaitable[None]]
DELIVERY_HOOKS: dict[str, DeliveryHook] = {}


def sms_enabled(settings: Settings) -> bool:
    return bool(settings.sms_provider)


def email_enabled(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def sms_recipient(protocol: Protocol) -> str | None:
    """The customer's phone given to an agent, else the calling number if a mobile."""
    if protocol.customer_phone and is_mobile(protocol.customer_phone):
        return protocol.customer_phone
    if is_mobile(protocol.caller_e164):
        return protocol.caller_e164
    return None


def new_key() -> str:
    return uuid.uuid4().hex


def notice_for(
    protocol: Protocol,
    settings: Settings,
    config: LifecycleConfig,
    *,
    customer_note: str | None = None,
    effective_at: datetime | None = None,
) -> templates.Notice:
    return templates.Notice(
        company=settings.company_name,
        number=protocol.number,
        opened_at=protocol.issued_at,
        status=protocol.status,
        subject_label=config.subject_label(protocol.subject),
        department_label=config.department_label(protocol.department),
        due_at=protocol.due_at,
        customer_name=protocol.customer_name,
        customer_note=customer_note,
        effective_at=effective_at,
        tz=config.tz,
    )


def render_rows(
    kind: str,
    notice: templates.Notice,
    settings: Settings,
    *,
    sms_to: str | None,
    email_to: str | None,
    event_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Outbox rows (column dicts) for one notice on the enabled channels."""
    now = utcnow()
    base = {
        "event_id": event_id,
        "kind": kind,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "data": {"protocol": notice.number, **(data or {})},
    }
    rows: list[dict[str, Any]] = []
    if sms_to and sms_enabled(settings):
        rows.append(
            {
                **base,
                "key": new_key(),
                "channel": "sms",
                "recipient": sms_to,
                "subject": None,
                "body": templates.sms_text(kind, notice, settings.sms_ascii),
            }
        )
    if email_to and email_enabled(settings):
        rendered = templates.email(kind, notice)
        rows.append(
            {
                **base,
                "key": new_key(),
                "channel": "email",
                "recipient": email_to,
                "subject": rendered.subject,
                "body": rendered.text,
            }
        )
    return rows


async def queue_for_protocol(
    session: AsyncSession,
    core: Core,
    protocol: Protocol,
    kind: str,
    *,
    event_id: int | None = None,
    customer_note: str | None = None,
    effective_at: datetime | None = None,
    sms: bool = True,
    email: bool = True,
) -> list[OutboxMessage]:
    """Add this protocol's notice to the outbox, in the caller's transaction."""
    from sac_ivr.lifecycle.services import lifecycle_of  # local: lifecycle imports us

    notice = notice_for(
        protocol,
        core.settings,
        lifecycle_of(core),
        customer_note=customer_note,
        effective_at=effective_at,
    )
    rows = render_rows(
        kind,
        notice,
        core.settings,
        sms_to=sms_recipient(protocol) if sms else None,
        email_to=protocol.customer_email if email else None,
        event_id=event_id,
    )
    messages = [OutboxMessage(protocol_id=protocol.id, **row) for row in rows]
    session.add_all(messages)
    return messages


def opening_hook(core: Core) -> Callable[[Connection, Sequence[IssuedProtocol]], None]:
    """Issuer hook: the opening SMS to each new protocol's caller (if a mobile), in
    the issuing transaction. One executemany per batch; rows found by number."""
    from sac_ivr.lifecycle.services import lifecycle_of

    settings = core.settings
    table = OutboxMessage.__table__
    protocol_id = (
        select(Protocol.id).where(Protocol.number == bindparam("b_number")).scalar_subquery()
    )
    statement = insert(table).values(protocol_id=protocol_id)

    def hook(connection: Connection, issued: Sequence[IssuedProtocol]) -> None:
        if not any(opening_sms_wanted(settings, item) for item in issued):
            return
        config = lifecycle_of(core)
        rows: list[dict[str, Any]] = []
        for item in issued:
            if not opening_sms_wanted(settings, item):
                continue
            notice = templates.Notice(
                company=settings.company_name,
                number=item.number,
                opened_at=item.issued_at,
                status="open",
                due_at=config.reply_due(item.issued_at, None),
                tz=config.tz,
            )
            for row in render_rows(
                "opened", notice, settings, sms_to=item.caller_e164, email_to=None
            ):
                rows.append({**row, "b_number": item.number})
        if rows:
            connection.execute(statement, rows)

    return hook


def opening_sms_wanted(settings: Settings, item: IssuedProtocol) -> bool:
    """Does a new protocol get the opening SMS (queued by :func:`opening_hook`)?"""
    return settings.notify_open_sms and sms_enabled(settings) and is_mobile(item.caller_e164)


def wake_after_opening(core: Core) -> Callable[[Sequence[IssuedProtocol]], None]:
    """Issuer after-commit callback: wake the outbox worker when the batch queued an
    opening SMS, and only then (a wake-up costs the worker a database scan, and
    batches come hundreds of times a second)."""
    settings = core.settings

    def after_commit(issued: Sequence[IssuedProtocol]) -> None:
        if any(opening_sms_wanted(settings, item) for item in issued):
            wake_worker(core)

    return after_commit


def wake_worker(core: Core) -> None:
    """Tell this process's outbox worker there is work (call after the commit)."""
    worker = core.extras.get("outbox")
    if worker is not None:
        worker.wake()


# ------------------------------------------------------------------ the worker's side


async def claim(
    sessionmaker: async_sessionmaker[AsyncSession],
    worker_id: str,
    settings: Settings,
    now: datetime | None = None,
    reader: async_sessionmaker[AsyncSession] | None = None,
) -> list[OutboxMessage]:
    """Take up to ``outbox_batch_size`` due rows: pending ones whose time has come and
    ``sending`` ones whose lease expired (their sender died).

    With ``reader`` (read-only sessions), a scan that finds nothing due ends there:
    on SQLite the claiming transaction holds the one write lock, which the protocol
    issuer needs hundreds of times a second."""
    now = now or utcnow()
    lease = timedelta(seconds=settings.outbox_lease_seconds)
    due = or_(
        and_(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == "sending", OutboxMessage.lease_until < now),
    )
    if reader is not None:
        async with reader() as session:
            if await session.scalar(select(OutboxMessage.id).where(due).limit(1)) is None:
                return []
    claimed: list[OutboxMessage] = []
    async with sessionmaker() as session, session.begin():
        rows = (
            await session.scalars(
                select(OutboxMessage)
                .where(due)
                .order_by(OutboxMessage.id)
                .limit(settings.outbox_batch_size)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for row in rows:
            if row.status == "sending":
                if row.attempts >= settings.outbox_max_attempts:
                    await _finish(
                        session,
                        row,
                        now,
                        delivered=False,
                        error="no result from the last attempt (its process stopped mid-send)",
                    )
                    continue
                log.warning(
                    "outbox %d (%s): lease expired while %s was sending it; sending again "
                    "with the same key %s",
                    row.id,
                    row.channel,
                    row.claimed_by,
                    row.key,
                )
            row.status = "sending"
            row.attempts += 1
            row.lease_until = now + lease
            row.claimed_by = worker_id
            claimed.append(row)
    return claimed


async def record_result(
    sessionmaker: async_sessionmaker[AsyncSession],
    message_id: int,
    worker_id: str,
    settings: Settings,
    *,
    provider_id: str | None = None,
    error: str | None = None,
    permanent: bool = False,
) -> str | None:
    """Store the outcome of one attempt; returns the row's new status."""
    now = utcnow()
    async with sessionmaker() as session, session.begin():
        row = await session.get(OutboxMessage, message_id, with_for_update=True)
        if row is None:  # deleted meanwhile (retention)
            return None
        if row.status == "sent":
            return row.status
        if error is None:
            row.provider_id = provider_id
            await _finish(session, row, now, delivered=True)
            return row.status
        if row.status != "sending" or row.claimed_by != worker_id:
            log.warning("outbox %d: result of a lost claim ignored (%s)", row.id, error_kind(error))
            return row.status
        row.last_error = error[:2000]
        if permanent or row.attempts >= settings.outbox_max_attempts:
            await _finish(session, row, now, delivered=False, error=error)
        else:
            row.status = "pending"
            row.lease_until = None
            row.next_attempt_at = now + backoff(row.attempts, settings)
        return row.status


def backoff(attempts: int, settings: Settings) -> timedelta:
    seconds = settings.outbox_backoff_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.outbox_backoff_max_seconds))


async def _finish(
    session: AsyncSession,
    row: OutboxMessage,
    now: datetime,
    *,
    delivered: bool,
    error: str | None = None,
) -> None:
    row.status = "sent" if delivered else "failed"
    row.lease_until = None
    if delivered:
        row.sent_at = now
    else:
        row.last_error = (error or row.last_error or "")[:2000]
    if row.protocol_id is not None:
        session.add(
            ProtocolEvent(
                protocol_id=row.protocol_id,
                at=now,
                actor="system",
                kind="notification_sent" if delivered else "notification_failed",
                data={
                    "outbox_id": row.id,
                    "channel": row.channel,
                    "notice": row.kind,
                    "to": mask_recipient(row.channel, row.recipient),
                    "attempts": row.attempts,
                    "message_key": row.key,
                    "provider_id": row.provider_id,
                    **({} if delivered else {"error": row.last_error}),
                },
            )
        )
    hook = DELIVERY_HOOKS.get(row.kind)
    if hook is not None:
        await hook(session, row, delivered)


def error_kind(error: str) -> str:
    """What kind of failure, for a log line: the text before the first colon ("HTTP
    503", "recipient refused", "TimeoutError"). A provider's own words may quote the
    recipient or the message: they stay in the outbox row (``last_error``)."""
    return error.partition(":")[0].strip()[:80] or "error"


def mask_recipient(channel: str, recipient: str) -> str | None:
    if channel == "sms":
        return mask_phone(recipient)
    local, _, domain = recipient.partition("@")
    return f"{local[:1]}***@{domain}"


async def notifications_of(session: AsyncSession, protocol_id: int) -> list[OutboxMessage]:
    rows = await session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.protocol_id == protocol_id)
        .order_by(OutboxMessage.id)
    )
    return list(rows.all())
