"""Tables of the audit feature."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sac_ivr.db.base import Base, UtcDateTime


class AccessLogEntry(Base):
    """One read of customers' personal data: who, when, what, which protocols, and
    the kind of search. A searched phone or CPF/CNPJ is kept only as a keyed hash
    (``auth.keys``), enough to answer "who looked this customer up"."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, index=True)
    actor: Mapped[str] = mapped_column(String(64), nullable=False, index=True)  # token name
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    endpoint: Mapped[str] = mapped_column(String(128), nullable=False)  # GET /api/v1/…/{number}
    client: Mapped[str | None] = mapped_column(String(64))  # address the request came from
    phone_hash: Mapped[str | None] = mapped_column(String(32), index=True)
    document_hash: Mapped[str | None] = mapped_column(String(32), index=True)
    rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # records shown

    protocols: Mapped[list[AccessLogProtocol]] = relationship(
        cascade="all, delete-orphan", order_by="AccessLogProtocol.number"
    )


class AccessLogProtocol(Base):
    """A protocol whose data one access showed."""

    __tablename__ = "access_log_protocols"

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("access_log.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class PublicLookupCount(Base):
    """Public lookups per local day and outcome (found, not_found, invalid, verified,
    verify_failed, limited)."""

    __tablename__ = "public_lookup_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
