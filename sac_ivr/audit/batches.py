"""The access log and the public lookup counters as they wait in memory to be
written in batches (see :mod:`sac_ivr.audit.services` for the guarantees). One of
each lives as long as the process, in :class:`~sac_ivr.core.Core`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sac_ivr.audit.tables import AccessLogEntry, AccessLogProtocol, PublicLookupCount
from sac_ivr.db.base import utcnow

log = logging.getLogger(__name__)

ACCESS_FLUSH_S = 1.0
COUNTS_FLUSH_S = 60.0
MAX_PENDING = 50_000

# Outcomes of a public lookup (one per request).
OUTCOMES = ("found", "not_found", "invalid", "verified", "verify_failed", "limited")


@dataclass(frozen=True)
class AccessRecord:
    at: datetime
    actor: str
    role: str
    action: str
    endpoint: str
    client: str | None
    phone_hash: str | None
    document_hash: str | None
    rows: int
    protocols: tuple[str, ...] = ()


class _Batcher:
    """A list written by a background task ``interval`` seconds after it stops being
    empty; ``flush()`` writes now."""

    interval = 1.0
    what = "entries"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    def _pending_count(self) -> int:
        raise NotImplementedError

    async def _write(self) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._pending_count():
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
                self._failures = 0
            except Exception as exc:
                self._failures += 1
                if self._failures == 1 or self._failures % 60 == 0:
                    log.warning(
                        "%s: %d %s not written yet (%s); trying again",
                        type(self).__name__,
                        self._pending_count(),
                        self.what,
                        type(exc).__name__,
                    )

    async def flush(self) -> None:
        async with self._lock:
            await self._write()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pending_count():
            try:
                await self.flush()
            except Exception as exc:
                log.error(
                    "%s: %d %s lost at shutdown (%s)",
                    type(self).__name__,
                    self._pending_count(),
                    self.what,
                    type(exc).__name__,
                )


class AccessLog(_Batcher):
    interval = ACCESS_FLUSH_S
    what = "access log entries"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessionmaker)
        self._pending: list[AccessRecord] = []
        self.dropped = 0

    def _pending_count(self) -> int:
        return len(self._pending)

    def add(self, record: AccessRecord) -> None:
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error(
                    "access log: %d entries dropped: the database is unreachable", self.dropped
                )
            return
        self._pending.append(record)
        self._wake()

    async def _write(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            async with self.sessionmaker() as session, session.begin():
                session.add_all(
                    AccessLogEntry(
                        at=r.at,
                        actor=r.actor,
                        role=r.role,
                        action=r.action,
                        endpoint=r.endpoint,
                        client=r.client,
                        phone_hash=r.phone_hash,
                        document_hash=r.document_hash,
                        rows=r.rows,
                        protocols=[AccessLogProtocol(number=n) for n in r.protocols],
                    )
                    for r in batch
                )
        except BaseException:
            self._pending[:0] = batch  # kept, in order, for the next attempt
            raise


class LookupCounters(_Batcher):
    """Public lookups by outcome: since this process started (``since_start``), and
    per local day in the database (``public_lookup_counts``), for every instance."""

    interval = COUNTS_FLUSH_S
    what = "lookup counts"

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], tz: tzinfo, postgres: bool
    ) -> None:
        super().__init__(sessionmaker)
        self.tz = tz
        self.postgres = postgres
        self.since_start: Counter[str] = Counter()
        self._pending: Counter[tuple[date, str]] = Counter()

    def _pending_count(self) -> int:
        return len(self._pending)

    def count(self, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown lookup outcome {outcome!r}")
        self.since_start[outcome] += 1
        self._pending[(utcnow().astimezone(self.tz).date(), outcome)] += 1
        self._wake()

    async def _write(self) -> None:
        batch, self._pending = self._pending, Counter()
        if not batch:
            return
        insert = pg_insert if self.postgres else sqlite_insert
        try:
            async with self.sessionmaker() as session, session.begin():
                for (day, outcome), n in sorted(batch.items()):
                    stmt = insert(PublicLookupCount).values(day=day, outcome=outcome, count=n)
                    await session.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["day", "outcome"],
                            set_={"count": PublicLookupCount.count + stmt.excluded.count},
                        )
                    )
        except BaseException:
            self._pending.update(batch)
            raise
