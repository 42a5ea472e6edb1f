"""Tokens and panel sessions: creating, checking, listing, revoking.

Tokens are 32 random bytes (URL-safe); only their SHA-256 is stored, so a copy of
the database gives nobody access. A token may have an expiry. Roles are ordered:
admin > supervisor > agent; only an admin manages tokens over HTTP.

A browser never holds a token: logging in trades it for a session id (32 random
bytes, only its SHA-256 stored) that expires after ``panels_session_hours``, ends at
logout, and ends with its token.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sac_ivr.auth.tables import ApiToken, PanelSession
from sac_ivr.db.base import utcnow

ROLES = ("agent", "supervisor", "admin")
TOKEN_PREFIX = "sac_"
SESSION_PREFIX = "sacs_"
NAME_MAX = 64
EXTENSION_MAX = 64
CREDENTIAL_MAX = 200  # longer than any token or session id we hand out
# Expired or ended sessions are deleted this long after they stop working.
SESSION_KEEP = timedelta(days=1)


@dataclass(frozen=True)
class Identity:
    name: str
    role: str
    extension: str | None
    token_id: int | None = None
    session_id: int | None = None  # set when the browser's session cookie identified it

    def has_role(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


class TokenError(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NameInUse(TokenError):
    pass


class TokenNotFound(LookupError):
    pass


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _active(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Conditions of a token that works: not revoked, not expired."""
    return (
        ApiToken.revoked_at.is_(None),
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
    )


def is_active(row: ApiToken, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return row.revoked_at is None and (row.expires_at is None or row.expires_at > now)


def _printable(text: str, limit: int) -> bool:
    if len(text) > limit or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def check_token_fields(
    name: str, role: str, extension: str | None, expires_at: datetime | None
) -> tuple[str, str | None]:
    """(name, extension) cleaned; TokenError with the reason otherwise."""
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}", "role")
    name = name.strip()
    if not name or not _printable(name, NAME_MAX):
        raise TokenError(f"name must be 1 to {NAME_MAX} printable characters", "name")
    if extension is not None:
        extension = extension.strip() or None
        if extension and not _printable(extension, EXTENSION_MAX):
            raise TokenError(
                f"extension must be at most {EXTENSION_MAX} printable characters", "extension"
            )
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise TokenError(
                "expires_at needs a time zone (e.g. 2027-01-31T18:00:00-03:00)", "expires_at"
            )
        if expires_at <= utcnow():
            raise TokenError("expires_at is in the past", "expires_at")
    return name, extension


async def create_token(
    sessionmaker: async_sessionmaker[AsyncSession],
    name: str,
    role: str,
    extension: str | None = None,
    *,
    expires_at: datetime | None = None,
) -> str:
    """Store a new token and return it; it is never retrievable again."""
    token, _ = await create_token_row(sessionmaker, name, role, extension, expires_at=expires_at)
    return token


async def create_token_row(
    sessionmaker: async_sessionmaker[AsyncSession],
    name: str,
    role: str,
    extension: str | None = None,
    *,
    expires_at: datetime | None = None,
) -> tuple[str, ApiToken]:
    """(the token, its row): the token is shown once, the row is what lists show."""
    name, extension = check_token_fields(name, role, extension, expires_at)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        role=role,
        token_sha256=hash_token(token),
        extension=extension,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    try:
        async with sessionmaker() as session, session.begin():
            session.add(row)
    except IntegrityError:
        raise NameInUse(
            f"a token named {name!r} is active: revoke it first to give the name a new token",
            "name",
        ) from None
    return token, row


async def identify(sessionmaker: async_sessionmaker[AsyncSession], token: str) -> Identity | None:
    """The holder of an active (not revoked, not expired) token, else None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > CREDENTIAL_MAX:
        return None
    async with sessionmaker() as session:
        row = await session.scalar(
            select(ApiToken).where(ApiToken.token_sha256 == hash_token(token), *_active(utcnow()))
        )
    if row is None:
        return None
    return Identity(name=row.name, role=row.role, extension=row.extension, token_id=row.id)


async def list_tokens(
    session: AsyncSession, *, include_inactive: bool = False, limit: int = 1000, offset: int = 0
) -> tuple[Sequence[ApiToken], int]:
    """Tokens, newest first: the active ones, or all of them."""
    query = select(ApiToken)
    if not include_inactive:
        query = query.where(*_active(utcnow()))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(ApiToken.created_at.desc(), ApiToken.id.desc()).limit(limit).offset(offset)
    )
    return rows.all(), int(total or 0)


async def revoke_token(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    token_id: int | None = None,
    name: str | None = None,
) -> ApiToken:
    """Revoke a token (by id, or the active token of a name) and end its sessions.
    Revoking a revoked token changes nothing. TokenNotFound when there is none."""
    now = utcnow()
    async with sessionmaker() as session, session.begin():
        if token_id is not None:
            row = await session.get(ApiToken, token_id, with_for_update=True)
        else:
            row = await session.scalar(
                select(ApiToken)
                .where(ApiToken.name == (name or "").strip(), ApiToken.revoked_at.is_(None))
                .with_for_update()
            )
        if row is None:
            raise TokenNotFound(f"no token {token_id if token_id is not None else repr(name)}")
        if row.revoked_at is None:
            row.revoked_at = now
        await session.execute(
            update(PanelSession)
            .where(PanelSession.token_id == row.id, PanelSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return row


async def is_active_name(session: AsyncSession, name: str, role: str = "agent") -> bool:
    """Does an active token of at least ``role`` carry this name?"""
    rows = await session.scalars(
        select(ApiToken.role).where(ApiToken.name == name, *_active(utcnow()))
    )
    return any(Identity(name, r, None).has_role(role) for r in rows if r in ROLES)


# ---------------------------------------------------------------- sessions


async def create_session(
    sessionmaker: async_sessionmaker[AsyncSession], identity: Identity, hours: float
) -> tuple[str, datetime]:
    """A new session for the holder of a checked token: (session id, expiry)."""
    if identity.token_id is None:
        raise ValueError("a session needs the identity of a token")
    session_id = SESSION_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + timedelta(hours=hours)
    async with sessionmaker() as session, session.begin():
        # Housekeeping while we are here: sessions dead for a day go.
        await session.execute(
            delete(PanelSession).where(
                or_(
                    PanelSession.expires_at < now - SESSION_KEEP,
                    PanelSession.revoked_at < now - SESSION_KEEP,
                )
            )
        )
        session.add(
            PanelSession(
                session_sha256=hash_token(session_id),
                token_id=identity.token_id,
                created_at=now,
                expires_at=expires_at,
            )
        )
    return session_id, expires_at


async def identify_session(
    sessionmaker: async_sessionmaker[AsyncSession], session_id: str
) -> Identity | None:
    """The holder of a live session (not expired, not ended, its token active)."""
    if not session_id.startswith(SESSION_PREFIX) or len(session_id) > CREDENTIAL_MAX:
        return None
    now = utcnow()
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(PanelSession.id, ApiToken)
                .join(ApiToken, ApiToken.id == PanelSession.token_id)
                .where(
                    PanelSession.session_sha256 == hash_token(session_id),
                    PanelSession.revoked_at.is_(None),
                    PanelSession.expires_at > now,
                    *_active(now),
                )
            )
        ).first()
    if row is None:
        return None
    sid, token = row
    return Identity(
        name=token.name,
        role=token.role,
        extension=token.extension,
        token_id=token.id,
        session_id=sid,
    )


async def end_session(sessionmaker: async_sessionmaker[AsyncSession], session_id: str) -> bool:
    """Log out: the session stops working at once. False if it was not live."""
    if not session_id.startswith(SESSION_PREFIX) or len(session_id) > CREDENTIAL_MAX:
        return False
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            update(PanelSession)
            .where(
                PanelSession.session_sha256 == hash_token(session_id),
                PanelSession.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
    return bool(result.rowcount)


async def live_session_counts(session: AsyncSession, token_ids: Sequence[int]) -> dict[int, int]:
    """Live panel sessions per token (for the token list)."""
    if not token_ids:
        return {}
    now = utcnow()
    rows = await session.execute(
        select(PanelSession.token_id, func.count())
        .where(
            PanelSession.token_id.in_(token_ids),
            PanelSession.revoked_at.is_(None),
            PanelSession.expires_at > now,
        )
        .group_by(PanelSession.token_id)
    )
    return {token_id: int(count) for token_id, count in rows}
