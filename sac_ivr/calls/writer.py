"""The call log writer: AMI events in, ``CallLog`` rows out, in batches, with retry.

:meth:`CallLogWriter.feed` (an AMI subscriber) queues events; one task drains the
queue in batches. Each batch is stored in two phases:

1. **read**, in a read-only session (``core.reader``): the batch's rows and the
   protocols they concern are loaded, the events merged (:mod:`sac_ivr.calls.calllog`)
   and the protocol writes planned (:mod:`sac_ivr.calls.protocol_links`), without
   SQLite's write lock;
2. **write**, in one short transaction that only INSERTs and UPDATEs: the rows and
   the planned protocol writes.

SQLite has one write lock for the whole file; the issuer needs it to give a caller
a number. Reading inside the write transaction made callers wait for the call log's
reads (measured: real SIP intro p99 38 ms with AMI on against 17.6 ms off). One
writer per Asterisk server writes that server's rows, in one instance at a time
(its ``gate``: :mod:`sac_ivr.calls.follow`), so what it read is still true when it
writes; protocol writes are conditional UPDATEs, safe against the issuer.

A database failure is retried, never dropped silently: while the database is
unreachable the events wait in the queue (at most ``max_queued``; past it new
events are dropped and counted, and :attr:`CallLogWriter.dropped` tells the owner
to reconcile once the database is back). An event the database refuses is logged
(by kind and linkedid) and dropped alone. Reconciliation after an AMI reconnect is
queued behind the events read before it, so it sees them applied. ``alive``
records (:meth:`CallLogWriter.alive`) go through the same queue: when one is
stored, every event read before it is stored too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sac_ivr.calls import protocol_links
from sac_ivr.calls.calllog import HANDLED_EVENTS, apply_event, new_call, reconcile_row
from sac_ivr.calls.events import ChannelSnapshot, event_time, linkedid_of
from sac_ivr.calls.tables import DEFAULT_SERVER, AmiFollower, CallLog
from sac_ivr.db.base import utcnow

log = logging.getLogger(__name__)

CHUNK = 400  # stay under SQLite's bound-parameter limit


@dataclass
class _Event:
    linkedid: str
    event: dict[str, Any]
    at: datetime
    received_at: datetime


@dataclass
class _Control:
    kind: str  # "reconcile" | "flush" | "stop" | "alive"
    future: asyncio.Future[int]
    snapshot: ChannelSnapshot | None = None
    lost_at: datetime | None = None
    use_alive: bool = False  # reconcile: the last stored "alive" also bounds the end
    at: datetime | None = None  # alive: when


class NotFollowing(Exception):
    """Another instance writes this server's call log now: drop what was queued."""


class CallLogWriter:
    """Queues AMI events (:meth:`feed`, an AMI subscriber) and stores them in batches."""

    RETRY_MIN_S = 0.2
    RETRY_MAX_S = 10.0

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        reader: async_sessionmaker[AsyncSession] | None = None,
        max_batch: int = 500,
        max_queued: int = 100_000,
        server: str = DEFAULT_SERVER,
        holder: str = "",
        gate: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """``sessionmaker`` writes; ``reader`` (read-only sessions) reads, by default
        ``sessionmaker`` itself (then reads do not take a write lock either: they are
        outside the write transaction). ``server``: the Asterisk server whose rows
        this writer writes; ``gate()`` is awaited before every write: False drops the
        write (another instance follows the server now)."""
        self.server = server
        self.holder = holder[:128]
        self._gate = gate
        self._sessionmaker = sessionmaker
        self._reader = reader or sessionmaker
        self._max_batch = max_batch
        self._max_queued = max_queued
        self._queue: asyncio.Queue[_Event | _Control] | None = None
        self._task: asyncio.Task[None] | None = None
        self._dropped = 0
        self._stopping = False
        self.events_stored = 0

    @property
    def dropped(self) -> int:
        """Events dropped so far because the queue was full."""
        return self._dropped

    # -- input
    def feed(self, event: dict[str, Any], received_at: datetime | None = None) -> None:
        """Take one AMI event (never blocks; garbage and unknown events are ignored);
        ``received_at``: when it was read, if not now (an event replayed later)."""
        name = event.get("Event")
        if not isinstance(name, str) or name not in HANDLED_EVENTS:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("call log: ignoring event %.40r", name)
            return
        linkedid = linkedid_of(event)
        if linkedid is None:
            log.debug("call log: ignoring %s without a usable Linkedid", name)
            return
        if self._queue is None:
            raise RuntimeError("CallLogWriter.start() was not called")
        received_at = received_at or utcnow()
        item = _Event(linkedid, event, event_time(event, received_at), received_at)
        if self._queue.qsize() >= self._max_queued:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.error(
                    "call log: %d event(s) dropped, the database is not keeping up; "
                    "reconciliation will close the affected calls",
                    self._dropped,
                )
            return
        self._queue.put_nowait(item)

    async def reconcile(
        self, snapshot: ChannelSnapshot, lost_at: datetime | None, *, use_alive: bool = False
    ) -> int:
        """Close calls Asterisk no longer has; returns how many were closed.

        A call gone unseen ended after it was last known up: its last event, the
        link's loss ``lost_at``, and with ``use_alive`` (after a (re)connect) the last
        ``alive`` record of this server, whoever wrote it."""
        return await self._control(
            "reconcile", snapshot=snapshot, lost_at=lost_at, use_alive=use_alive
        )

    def alive(self, at: datetime) -> asyncio.Future[int]:
        """Record (once every event queued before it is stored) that this server's
        calls were followed until ``at``; queued at once, the future says when done."""
        if self._queue is None:
            raise RuntimeError("CallLogWriter.start() was not called")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Control("alive", future, at=at))
        return future

    async def flush(self) -> None:
        """Wait until every event fed so far is stored."""
        await self._control("flush")

    async def _control(self, kind: str, **kwargs: Any) -> int:
        if self._queue is None:
            raise RuntimeError("CallLogWriter.start() was not called")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Control(kind, future, **kwargs))
        return await future

    # -- lifecycle
    async def start(self) -> None:
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="call-log")

    async def close(self, timeout: float = 10.0) -> None:
        """Store what is queued (at most ``timeout`` seconds), then stop."""
        task, self._task = self._task, None
        if task is None or self._queue is None:
            return
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Control("stop", future))
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            log.error("call log: %d event(s) not stored at shutdown", self._queue.qsize())
            self._stopping = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the worker
    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            events: list[_Event] = []
            for item in batch:
                if isinstance(item, _Event):
                    events.append(item)
                    continue
                await self._store(events)
                events = []
                if await self._handle_control(item):
                    return
            await self._store(events)

    async def _handle_control(self, item: _Control) -> bool:
        if item.kind == "stop":
            item.future.set_result(0)
            return True
        if item.kind == "flush":
            if not item.future.done():
                item.future.set_result(0)
            return False
        handler = self._reconcile if item.kind == "reconcile" else self._alive
        try:
            closed = await self._with_retry(handler, item)
        except NotFollowing:
            closed = 0
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return False
        if not item.future.done():
            item.future.set_result(closed)
        return False

    async def _store(self, events: list[_Event]) -> None:
        if not events:
            return
        try:
            await self._with_retry(self._store_once, events)
        except NotFollowing:
            log.warning(
                "call log of server %s: %d event(s) not written: another instance follows "
                "this server now",
                self.server,
                len(events),
            )
            return
        except SQLAlchemyError as exc:
            if len(events) == 1:
                item = events[0]
                log.error(
                    "call log: dropped a %s event of call %s the database refused: %s",
                    item.event.get("Event"),
                    item.linkedid,
                    exc,
                )
                return
            for item in events:  # find the event the database refuses, keep the others
                await self._store([item])
            return
        self.events_stored += len(events)

    async def _with_retry(self, fn: Any, arg: Any) -> int:
        """Retry while the database is unreachable; re-raise errors retrying won't fix."""
        delay = self.RETRY_MIN_S
        conflicts = 0
        while True:
            try:
                return await fn(arg)
            except IntegrityError:
                conflicts += 1  # another writer inserted the same call: reload and merge
                if conflicts > 3:
                    raise
                log.info("call log: concurrent insert of a call; retrying the batch")
                continue
            except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
                if self._stopping:
                    raise
                log.warning("call log: database unavailable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.RETRY_MAX_S)

    async def _store_once(self, events: list[_Event]) -> int:
        """One batch: merged and planned on a read-only session, then written."""
        async with self._reader() as session:
            rows = await _load(session, self.server, {e.linkedid for e in events})
            session.expunge_all()  # merged detached: this session never flushes them
            touched: dict[str, CallLog] = {}
            for item in events:
                row = rows.get(item.linkedid)
                if row is None:
                    row = rows[item.linkedid] = new_call(
                        item.linkedid, item.at, item.received_at, self.server
                    )
                apply_event(row, item.event, item.at, item.received_at)
                touched[item.linkedid] = row
            links = await protocol_links.plan_links(session, touched.values())
        await self._write(touched.values(), links)
        return len(events)

    async def _write(
        self, rows: Iterable[CallLog], links: protocol_links.LinkWrites | None = None
    ) -> None:
        """The write phase: one short transaction of INSERTs and UPDATEs, no reads."""
        if self._gate is not None and not await self._gate():
            raise NotFollowing(self.server)
        async with self._sessionmaker() as session, session.begin():
            session.add_all(rows)
            await session.flush()
            if links is not None:
                await protocol_links.write_links(session, links)

    async def _reconcile(self, item: _Control) -> int:
        snapshot = item.snapshot
        assert snapshot is not None
        lost_at = item.lost_at
        async with self._reader() as session:
            rows = (
                await session.scalars(
                    select(CallLog).where(CallLog.server == self.server, CallLog.ended_at.is_(None))
                )
            ).all()
            if item.use_alive:
                alive_at = await session.scalar(
                    select(AmiFollower.alive_at).where(AmiFollower.server == self.server)
                )
                if alive_at is not None and (lost_at is None or alive_at > lost_at):
                    lost_at = min(alive_at, snapshot.sent_at)
        changed = [row for row in rows if reconcile_row(row, snapshot, lost_at)]
        closed = sum(1 for row in changed if row.ended_at is not None)
        if changed:
            await self._write(changed)
        if closed:
            log.warning(
                "call log of server %s: %d call(s) closed by reconciliation (hangup not seen)",
                self.server,
                closed,
            )
        return closed

    async def _alive(self, item: _Control) -> int:
        assert item.at is not None
        if self._gate is not None and not await self._gate():
            raise NotFollowing(self.server)
        async with self._sessionmaker() as session, session.begin():
            await session.merge(
                AmiFollower(server=self.server, holder=self.holder, alive_at=item.at)
            )
        return 0


async def _load(session: AsyncSession, server: str, linkedids: Iterable[str]) -> dict[str, CallLog]:
    ids = sorted(linkedids)
    rows: dict[str, CallLog] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        result = await session.scalars(
            select(CallLog).where(CallLog.server == server, CallLog.linkedid.in_(chunk))
        )
        rows.update({row.linkedid: row for row in result})
    return rows
