"""Tables of the history feature."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from sac_ivr.db.base import Base, UtcDateTime, utcnow


class HistoryRequest(Base):
    """A customer asked for their history of demands: tracked against its deadline
    (5 calendar days under Decreto 11.034, 72 h under 6.523) until delivered."""

    __tablename__ = "history_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)  # token name
    phone_e164: Mapped[str | None] = mapped_column(String(20), index=True)
    document: Mapped[str | None] = mapped_column(String(20), index=True)
    # The protocol of the contact in which the customer asked, if any.
    protocol_id: Mapped[int | None] = mapped_column(
        ForeignKey("protocols.id", ondelete="SET NULL"), index=True
    )
    delivery: Mapped[str] = mapped_column(String(16), nullable=False)  # email | mail | ...
    email: Mapped[str | None] = mapped_column(String(254))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_via: Mapped[str | None] = mapped_column(String(16))
    delivered_by: Mapped[str | None] = mapped_column(String(64))
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
