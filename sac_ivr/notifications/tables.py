"""The outbox: one row per message to send, written in the same transaction as the
change it announces, sent later by a worker."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sac_ivr.db.base import Base, UtcDateTime, utcnow


class OutboxMessage(Base):
    __tablename__ = "notification_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stable id of this message across attempts: the e-mail Message-ID and the SMS
    # provider's idempotency key / client reference.
    key: Mapped[str] = mapped_column(String(40), unique=True, nullable=False)
    protocol_id: Mapped[int | None] = mapped_column(
        ForeignKey("protocols.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[int | None] = mapped_column(Integer)  # the timeline event announced
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # opened, status, ...
    channel: Mapped[str] = mapped_column(String(8), nullable=False)  # sms | email
    recipient: Mapped[str] = mapped_column(String(254), nullable=False)
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, nullable=False)
    body_html: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # pending -> sending (claimed, lease) -> sent | pending (retry) | failed
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_notification_outbox_due", "status", "next_attempt_at"),)
