"""Tables of the protocols feature."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sac_ivr.db.base import Base, UtcDateTime, utcnow
from sac_ivr.lifecycle.statuses import PENDING_STATUSES

# The WHERE of the partial index of requests not yet answered. A query uses it on
# SQLite only if it repeats this term with the values written out (reports/services.py).
PENDING_WHERE = "status IN (" + ", ".join(f"'{s}'" for s in PENDING_STATUSES) + ")"


class ProtocolCounter(Base):
    """One row per sequence (a day, or ``global``): the last value handed out.

    Incremented with a single ``INSERT … ON CONFLICT DO UPDATE … RETURNING``, so the
    database, not the process, decides who gets which value.
    """

    __tablename__ = "protocol_counters"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Protocol(Base):
    __tablename__ = "protocols"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True, nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    issue_date: Mapped[date] = mapped_column(Date, nullable=False)  # local date in the number
    channel_kind: Mapped[str] = mapped_column(String(16), nullable=False, default="phone")
    # The call that opened it
    caller_number: Mapped[str | None] = mapped_column(String(64))  # as Asterisk gave it
    caller_e164: Mapped[str | None] = mapped_column(String(20), index=True)
    caller_name: Mapped[str | None] = mapped_column(String(128))
    called_number: Mapped[str | None] = mapped_column(String(64))  # DNID
    uniqueid: Mapped[str | None] = mapped_column(String(64), index=True)
    linkedid: Mapped[str | None] = mapped_column(String(64), index=True)
    channel: Mapped[str | None] = mapped_column(String(128))
    # The request it tracks
    status: Mapped[str] = mapped_column(String(24), nullable=False, default="open", index=True)
    subject: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(64))
    agent: Mapped[str | None] = mapped_column(String(64))
    customer_document: Mapped[str | None] = mapped_column(String(20), index=True)
    customer_name: Mapped[str | None] = mapped_column(String(128))
    customer_email: Mapped[str | None] = mapped_column(String(254))
    customer_phone: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164
    notes: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    events: Mapped[list[ProtocolEvent]] = relationship(
        back_populates="protocol", order_by="ProtocolEvent.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        # Migration 0006 widened these two into covering indexes: the reports read a
        # period (opened, or answered, in it) and the requests not yet answered from
        # the index alone. The pending one repeats ``status`` for SQLite, which
        # otherwise reads the row to check the partial index's own WHERE.
        Index(
            "ix_protocols_issued_at_cover",
            "issued_at",
            "subject",
            "department",
            "status",
            "due_at",
            "resolved_at",
        ),
        Index("ix_protocols_resolved_at", "resolved_at", "issued_at", "status"),
        Index(
            "ix_protocols_pending_due",
            "due_at",
            "id",
            "agent",
            "status",
            sqlite_where=text(PENDING_WHERE),
            postgresql_where=text(PENDING_WHERE),
        ),
        # The listing of those (overdue=true, due_within_days), newest first.
        Index(
            "ix_protocols_pending_issued",
            "issued_at",
            "id",
            "due_at",
            "status",
            sqlite_where=text(PENDING_WHERE),
            postgresql_where=text(PENDING_WHERE),
        ),
    )


class ProtocolEvent(Base):
    """The timeline of a protocol: every change, who made it and when."""

    __tablename__ = "protocol_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    protocol_id: Mapped[int] = mapped_column(
        ForeignKey("protocols.id", ondelete="CASCADE"), nullable=False, index=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)  # "system", token name
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # opened, status, field, ...
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    department: Mapped[str | None] = mapped_column(String(64))
    customer_note: Mapped[str | None] = mapped_column(Text)  # what the customer is told
    internal_note: Mapped[str | None] = mapped_column(Text)  # agents only
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    protocol: Mapped[Protocol] = relationship(back_populates="events")

    # Reports: the status changes of a period, from the index alone (migration 0006;
    # ``kind`` repeated for SQLite, as in ix_protocols_pending_due).
    __table_args__ = (
        Index(
            "ix_protocol_events_status_at",
            "at",
            "actor",
            "from_status",
            "to_status",
            "protocol_id",
            "kind",
            sqlite_where=text("kind = 'status'"),
            postgresql_where=text("kind = 'status'"),
        ),
    )


def status_in(column: Any, values: tuple[str, ...]) -> ColumnElement[bool]:
    """``column IN ('a', 'b')`` with the values written out: SQLite uses a partial
    index only when the query repeats its WHERE term; bound parameters don't match."""
    return column.in_([literal_column(f"'{v}'") for v in values])


# Requests not yet answered: the term of ix_protocols_pending_due (PENDING_WHERE).
PENDING = status_in(Protocol.status, PENDING_STATUSES)
