"""The running service's shared parts, built once at start-up and handed to every
AGI route and HTTP handler (no globals)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from sac_ivr.config import Settings
from sac_ivr.db.engine import (
    create_engine,
    create_read_engine,
    make_read_sessionmaker,
    make_sessionmaker,
)
from sac_ivr.library_logs import quiet_library_loggers
from sac_ivr.live import LiveHub
from sac_ivr.protocols.issuer import ProtocolIssuer
from sac_ivr.protocols.numbering import ProtocolFormat, make_format

# Called when a caller presses the "send me this protocol by SMS" key.
SmsRequestHandler = Callable[[str, str | None], Awaitable[None]]


@dataclass
class Core:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # Sessions that only read (reports, lookups, listings): on SQLite they never take
    # the write lock the issuer needs, on PostgreSQL they run READ ONLY.
    reader: async_sessionmaker[AsyncSession]
    read_engine: AsyncEngine
    protocol_format: ProtocolFormat
    issuer: ProtocolIssuer
    sms_requested: SmsRequestHandler | None = None
    live: LiveHub = field(default_factory=LiveHub)
    # Feature objects that need to live as long as the process (AMI client, outbox
    # worker, live event hub): name -> object; closed in reverse order.
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings, **engine_kwargs: Any) -> Core:
        quiet_library_loggers()  # no library logs a customer's data, whatever log_level
        engine = create_engine(settings.database_url, **engine_kwargs)
        read_engine = create_read_engine(engine)
        sessionmaker = make_sessionmaker(engine)
        fmt = make_format(settings)
        issuer = ProtocolIssuer(engine, fmt, settings.tz)
        core = cls(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            reader=make_read_sessionmaker(read_engine),
            read_engine=read_engine,
            protocol_format=fmt,
            issuer=issuer,
        )
        install_features(core)
        return core

    async def close(self) -> None:
        for extra in reversed(list(self.extras.values())):
            close = getattr(extra, "close", None)
            if close is not None:
                await close()
        await self.issuer.close()
        if self.read_engine.sync_engine.pool is not self.engine.sync_engine.pool:
            await self.read_engine.dispose()
        await self.engine.dispose()


def install_features(core: Core) -> None:
    """Wire the features that hook into the call path: due dates and opening notices
    in the issuing transaction, the caller's "SMS me the protocol" key."""
    from sac_ivr.lifecycle.services import install  # local: the features import this module

    install(core)
