"""Creating and checking bearer tokens.

Tokens are 32 random bytes (URL-safe); only their SHA-256 is stored, so a copy of
the database gives nobody access. Roles are ordered: admin > supervisor > agent.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sac_ivr.auth.models import ApiToken

ROLES = ("agent", "supervisor", "admin")
TOKEN_PREFIX = "sac_"


@dataclass(frozen=True)
class Identity:
    name: str
    role: str
    extension: str | None

    def has_role(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


class TokenError(ValueError):
    pass


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def create_token(
    sessionmaker: async_sessionmaker[AsyncSession],
    name: str,
    role: str,
    extension: str | None = None,
) -> str:
    """Store a new token and return it; it is never retrievable again."""
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}")
    name = name.strip()
    if not name or len(name) > 64:
        raise TokenError("name must be 1 to 64 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        async with sessionmaker() as session, session.begin():
            session.add(
                ApiToken(name=name, role=role, token_sha256=hash_token(token), extension=extension)
            )
    except IntegrityError:
        raise TokenError(f"a token named {name!r} already exists") from None
    return token


async def identify(sessionmaker: async_sessionmaker[AsyncSession], token: str) -> Identity | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    async with sessionmaker() as session:
        row = await session.scalar(
            select(ApiToken).where(
                ApiToken.token_sha256 == hash_token(token), ApiToken.revoked_at.is_(None)
            )
        )
    if row is None:
        return None
    return Identity(name=row.name, role=row.role, extension=row.extension)
