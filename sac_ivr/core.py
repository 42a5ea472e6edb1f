"""The process's shared parts, built once at start-up and handed to every AGI route
and HTTP handler (no globals): settings, database engines and sessionmakers, the
protocol issuer, the live event hub, the hooks the features offer, and the feature
objects that live as long as the process.

Build it with :func:`sac_ivr.features.build_core`, which wires every feature's hooks
(``Core.create`` alone leaves the hooks empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from sac_ivr.agi.hooks import SmsRequestHandler
from sac_ivr.audit.batches import AccessLog, LookupCounters
from sac_ivr.config import Settings
from sac_ivr.db.engine import (
    create_engine,
    create_read_engine,
    make_read_sessionmaker,
    make_sessionmaker,
)
from sac_ivr.feature import Hook, Stoppable
from sac_ivr.library_logs import quiet_library_loggers
from sac_ivr.lifecycle.config import LifecycleConfig
from sac_ivr.live import LiveCalls, LiveHub
from sac_ivr.notifications.hooks import DeliveryHook, OutboxWakeup
from sac_ivr.protocols.issuer import ProtocolIssuer
from sac_ivr.protocols.numbering import ProtocolFormat, make_format
from sac_ivr.protocols.public_limits import PublicLimits


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
    # Offers the "issued" hooks: row fillers and in-transaction hooks run in the
    # issuing transaction, after-commit callbacks once it committed.
    issuer: ProtocolIssuer
    # Subjects, departments, legal deadlines.
    lifecycle: LifecycleConfig
    public_limits: PublicLimits
    # Written in the background, in batches (audit feature).
    access_log: AccessLog
    lookup_counters: LookupCounters
    live: LiveHub = field(default_factory=LiveHub)
    # Hooks offered by the call path and the notifications feature (the types say
    # when they run: sac_ivr.agi.hooks, sac_ivr.notifications.hooks).
    sms_requested: Hook[SmsRequestHandler] = field(
        default_factory=lambda: Hook[SmsRequestHandler]("sms_requested")
    )
    notice_delivered: Hook[DeliveryHook] = field(
        default_factory=lambda: Hook[DeliveryHook]("notice_delivered")
    )
    outbox_wakeup: Hook[OutboxWakeup] = field(
        default_factory=lambda: Hook[OutboxWakeup]("outbox_wakeup")
    )
    # The live call state: the calls feature's runtime when AMI is on (set while the
    # core is built; it follows AMI once the web process started it).
    live_calls: LiveCalls | None = None
    # Shared keys read from the database (auth.keys), cached for the process.
    key_cache: dict[str, bytes] = field(default_factory=dict)
    # Background work started in this process (features' ``background``), stopped in
    # reverse order by close().
    background: list[Stoppable] = field(default_factory=list)

    @classmethod
    def create(cls, settings: Settings, live: LiveHub | None = None, **engine_kwargs: Any) -> Core:
        quiet_library_loggers()  # no library logs a customer's data, whatever log_level
        engine = create_engine(settings.database_url, **engine_kwargs)
        read_engine = create_read_engine(engine)
        sessionmaker = make_sessionmaker(engine)
        fmt = make_format(settings)
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            reader=make_read_sessionmaker(read_engine),
            read_engine=read_engine,
            protocol_format=fmt,
            issuer=ProtocolIssuer(engine, fmt, settings.tz),
            lifecycle=LifecycleConfig.from_settings(settings),
            public_limits=PublicLimits.from_settings(settings),
            access_log=AccessLog(sessionmaker),
            lookup_counters=LookupCounters(
                sessionmaker, settings.tz, postgres=engine.dialect.name == "postgresql"
            ),
            live=live if live is not None else LiveHub(),
        )

    async def close(self) -> None:
        while self.background:
            await self.background.pop().close()
        await self.lookup_counters.close()
        await self.access_log.close()
        await self.issuer.close()
        if self.read_engine.sync_engine.pool is not self.engine.sync_engine.pool:
            await self.read_engine.dispose()
        await self.engine.dispose()
