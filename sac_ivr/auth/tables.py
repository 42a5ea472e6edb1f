"""Tables of the auth feature."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from sac_ivr.db.base import Base, UtcDateTime, utcnow


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored; the token is shown once.

    A name belongs to one active token at a time: a revoked token's name can be given
    to its holder's new token, so the author of their changes stays the same.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_sha256: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    extension: Mapped[str | None] = mapped_column(String(64))  # agent's softphone/interface
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # None: never
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index(
            "uq_api_tokens_active_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )


class PanelSession(Base):
    """A browser's login: a random id in the cookie, only its SHA-256 here.

    It lives at most ``panels_session_hours``, ends at logout, and ends with its
    token (a revoked or expired token's sessions are refused).
    """

    __tablename__ = "panel_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_sha256: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AppSecret(Base):
    """Keys every instance on this database shares (created on first use): the key of
    signed lookup links, the key of the access log's hashes of searched phones and
    documents."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128), nullable=False)  # hex
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
