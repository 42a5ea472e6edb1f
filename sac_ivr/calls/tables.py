"""The call log: one row per call, keyed by Asterisk's ``linkedid`` (shared by all legs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from sac_ivr.db.base import Base, UtcDateTime, utcnow


class CallLog(Base):
    """One call as seen over AMI, merged from its events in any order.

    ``answered_at`` is when an agent answered (AgentConnect); ``line_answered_at``
    when Asterisk answered the line (the IVR). ``state`` holds what the merge needs
    to stay idempotent and order-independent (the legs, the sources of some fields);
    it is not part of the API.
    """

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    protocol_number: Mapped[str | None] = mapped_column(String(40), index=True)
    caller_number: Mapped[str | None] = mapped_column(String(64))  # as Asterisk gave it
    caller_e164: Mapped[str | None] = mapped_column(String(20), index=True)
    caller_name: Mapped[str | None] = mapped_column(String(128))
    called_number: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(128))  # the caller's leg
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    line_answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    queue: Mapped[str | None] = mapped_column(String(128))
    queue_entered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    queue_left_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    wait_s: Mapped[float | None] = mapped_column(Float)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    agent_interface: Mapped[str | None] = mapped_column(String(128))
    agent_name: Mapped[str | None] = mapped_column(String(128))
    talk_s: Mapped[float | None] = mapped_column(Float)
    transfers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duration_s: Mapped[float | None] = mapped_column(Float)
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    hangup_cause_text: Mapped[str | None] = mapped_column(String(128))
    recording_file: Mapped[str | None] = mapped_column(String(512))
    # in_progress | answered | abandoned (queued, no agent) | ivr (never queued)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False, default="in_progress")
    reconciled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    last_event_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )

    __table_args__ = (
        Index("ix_calls_started_at", "started_at"),
        Index("ix_calls_ended_at", "ended_at"),
        # Calls by agent (name or interface), newest first (migration 0006).
        Index("ix_calls_agent_name_started_at", "agent_name", "started_at"),
        # agent_name too: the interface half excludes the rows the name half counted.
        Index("ix_calls_agent_interface_started_at", "agent_interface", "started_at", "agent_name"),
    )
