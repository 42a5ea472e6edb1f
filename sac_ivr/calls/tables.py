"""The call log: one row per call, keyed by the Asterisk server's name and its
``linkedid`` (shared by all legs; unique only within one Asterisk)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sac_ivr.db.base import Base, UtcDateTime, utcnow

DEFAULT_SERVER = "default"  # the one server of ami_host/ami_port


class CallLog(Base):
    """One call as seen over AMI, merged from its events in any order.

    ``answered_at`` is when an agent answered (AgentConnect); ``line_answered_at``
    when Asterisk answered the line (the IVR). ``state`` holds what the merge needs
    to stay idempotent and order-independent (the legs, the sources of some fields);
    it is not part of the API.
    """

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The Asterisk server the call is on (its name in ami_servers; "default" alone)
    server: Mapped[str] = mapped_column(
        String(64), nullable=False, default=DEFAULT_SERVER, server_default=DEFAULT_SERVER
    )
    linkedid: Mapped[str] = mapped_column(String(64), nullable=False)
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
        UniqueConstraint("server", "linkedid", name="uq_calls_server_linkedid"),
        Index("ix_calls_started_at", "started_at"),
        Index("ix_calls_ended_at", "ended_at"),
        # Calls by agent (name or interface), newest first (migration 0006).
        Index("ix_calls_agent_name_started_at", "agent_name", "started_at"),
        # agent_name too: the interface half excludes the rows the name half counted.
        Index("ix_calls_agent_interface_started_at", "agent_interface", "started_at", "agent_name"),
    )


class AmiFollower(Base):
    """Who follows an Asterisk server's AMI, and until when it was known to.

    ``alive_at`` is written through the call log writer's queue while the link is up,
    so every event read before it is stored: a call that the next follower finds gone
    was still up at ``alive_at`` (the start of the window its end is unknown in; see
    :func:`sac_ivr.calls.calllog.reconcile_row`). The follower itself is chosen by a
    PostgreSQL advisory lock (:mod:`sac_ivr.calls.follow`), not by this row.
    """

    __tablename__ = "ami_followers"

    server: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128), nullable=False)  # host:pid
    alive_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
