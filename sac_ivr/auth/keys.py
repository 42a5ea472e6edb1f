"""Keys every instance on one database shares, kept in the database and created on
first use (the first instance to need one writes it; the others read that one).

- ``lookup_link``: signs public lookup links (HMAC of the number and an expiry),
  which open a protocol's subject and notes without the second factor;
- ``access_log``: keys the hashes of the phones and CPF/CNPJ agents searched for,
  so the access log can answer "who looked this customer up" without holding them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sac_ivr.auth.tables import AppSecret
from sac_ivr.db.base import utcnow

if TYPE_CHECKING:
    from sac_ivr.core import Core

EXTRA_KEY = "auth_keys"
KEY_NAMES = ("lookup_link", "access_log")
SIGNATURE_BYTES = 16  # 128 bits, base64url: 22 characters in a link


async def key(core: Core, name: str) -> bytes:
    """The shared key ``name`` (32 bytes), cached in this process."""
    if name not in KEY_NAMES:
        raise ValueError(f"unknown key {name!r}")
    cache: dict[str, bytes] = core.extras.setdefault(EXTRA_KEY, {})
    if name in cache:
        return cache[name]
    async with core.sessionmaker() as session, session.begin():
        value = await session.scalar(select(AppSecret.value).where(AppSecret.name == name))
        if value is None:
            insert = pg_insert if core.engine.dialect.name == "postgresql" else sqlite_insert
            await session.execute(
                insert(AppSecret)
                .values(name=name, value=secrets.token_hex(32), created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
            )
            value = await session.scalar(select(AppSecret.value).where(AppSecret.name == name))
    assert value is not None
    cache[name] = bytes.fromhex(value)
    return cache[name]


def keyed_hash(secret: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 of ``kind:value`` as 32 hex characters."""
    mac = hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def link_signature(secret: bytes, number: str, expires: int) -> str:
    mac = hmac.new(secret, f"lookup:{number}:{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:SIGNATURE_BYTES]).rstrip(b"=").decode()


def signature_ok(secret: bytes, number: str, expires: int, signature: str) -> bool:
    return hmac.compare_digest(link_signature(secret, number, expires), signature)
