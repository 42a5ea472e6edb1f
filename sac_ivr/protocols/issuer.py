"""Issuing protocol numbers: unique, durable before they are spoken, fast under load.

Every call waits for its number in a queue. One worker takes all the calls waiting
at that moment and, in ONE transaction, bumps each day's counter by the batch size
and inserts the batch's rows; the commit (an fsync) is shared by the whole batch,
which is what keeps p99 low at 100 concurrent calls (group commit). A number is
handed back only after its row is committed.

The batch transaction is one synchronous function (:func:`write_batch`). On SQLite
it runs right on the event loop, on a plain pysqlite connection: a batch's commit
takes about a millisecond, while handing it to a thread costs more than that on a
busy 2-core machine (each statement gives up the GIL and waits to get it back from
a loop serving a hundred calls; measured in BENCHMARKS.md: 2,800 vs 4,100 calls/s).
The price is that a slow disk pauses the loop for its fsync: deployments with slow
storage belong on PostgreSQL, where the batch runs through the async engine
(``run_sync``) and the loop never blocks. Waiting for SQLite's write lock never
blocks the loop: that connection has ``busy_timeout=0`` and the issuer yields and
retries (another transaction in this very process may need the loop to finish).

Uniqueness does not depend on this process: the counter is bumped by the database
(``INSERT … ON CONFLICT DO UPDATE … RETURNING``), row-locked in PostgreSQL and under
SQLite's single-writer lock, and ``protocols.number`` is UNIQUE as a last guard.

One row can only fail itself. What Asterisk sends is brought to what both databases
store alike before the insert (:func:`storable`: the model's column widths, no NUL
or other control characters, no lone surrogates), so PostgreSQL does not refuse what
SQLite would keep. If a batch fails anyway (a hook refuses a row, a trigger, a
constraint), its transaction is rolled back (counters included) and each of its
calls is issued again in a transaction of its own, with the same hooks: the good
calls get their numbers, only the bad one gets an error. Errors that mean the
database itself is gone (connection, disk) are not retried row by row: they fail
every call of the batch at once, as before.

Through a database outage (PostgreSQL; :meth:`ProtocolIssuer.use_reserve`, wired by
the protocols feature): each instance holds blocks of sequence values reserved ahead
through the normal counter bump (``protocol_reserve_block`` per counter key, for
today and tomorrow, local time) and recorded in a local journal
(:mod:`sac_ivr.protocols.reserve`). While the database answers nothing changes but
a bound: a batch that fails because the database is gone, or does not commit within
``protocol_db_timeout`` (a frozen server), puts the issuer in outage mode: that
batch and every later one take their numbers from the reserve, each journaled (one
fsync per batch) before it is returned. A background keeper replays the journal
when the database answers again: the journaled protocols are inserted with
``ON CONFLICT (number) DO NOTHING`` and the same fillers, opening events and hooks as
a normal issue (run for the rows actually inserted, so a replay repeated after a
crash adds nothing twice), then marked replayed; the issuer leaves outage mode once
nothing is left to replay, and the keeper reserves new blocks. A reserve that runs
out during the outage fails its callers as before (logged as an error).

A batch abandoned at the bound is rolled back if it had not yet sent its COMMIT; one
whose COMMIT was already on the wire may still be stored under its normal number: the
caller then has heard the reserve number, and the other row is a second protocol of
the same call (same linkedid), never a number given twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import BigInteger, Connection, Engine, String, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from sac_ivr.db.base import utcnow
from sac_ivr.db.engine import begin_with_deadline, create_sync_engine, is_sqlite
from sac_ivr.phones import normalize_phone
from sac_ivr.protocols.numbering import ProtocolFormat
from sac_ivr.protocols.reserve import CALL_FIELDS, Journal, JournalEntry, Taken
from sac_ivr.protocols.tables import Protocol, ProtocolCounter
from sac_ivr.protocols.timeline import INSERT_OPENED_EVENTS

log = logging.getLogger(__name__)

MAX_BATCH = 256
# How long a batch waits for SQLite's write lock (held by another transaction or
# process) before its callers go on without a number.
SQLITE_LOCK_WAIT_S = 3.0
# Longest pause between two tries for the lock: a try costs microseconds, and the
# callers waiting on the batch hear silence until the lock is free AND tried again.
SQLITE_LOCK_POLL_MAX_S = 0.002
# The outage keeper: how often it checks the reserve while all is well, how soon it
# tries the database again during an outage, how many journaled protocols one replay
# transaction stores, and how long replayed entries stay in the journal.
RESERVE_REFRESH_S = 30.0
OUTAGE_RETRY_S = 0.5
REPLAY_CHUNK = 256
JOURNAL_KEEP = timedelta(days=2)
# PostgreSQL: a batch takes milliseconds; past this the server is taken as gone (hung,
# or cut off without a reset) and the batch fails, instead of holding every caller
# queued behind it until the driver's command timeout (see db/engine.py).
PG_BATCH_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class CallInfo:
    """What the channel tells us about the call that needs a number."""

    caller_number: str | None = None
    caller_name: str | None = None
    called_number: str | None = None
    uniqueid: str | None = None
    linkedid: str | None = None
    channel: str | None = None


# -- what Asterisk sends, brought to what both databases store alike -------------------

# The CallInfo fields and the protocols columns they go to (widths read from the model).
_CALL_COLUMNS = ("caller_number", "caller_name", "called_number", "uniqueid", "linkedid", "channel")


def _width(name: str) -> int:
    column_type = Protocol.__table__.c[name].type
    if not isinstance(column_type, String) or column_type.length is None:
        raise TypeError(f"protocols.{name} is not a string column of bounded length")
    return column_type.length


WIDTHS: dict[str, int] = {name: _width(name) for name in _CALL_COLUMNS}
# C0 and C1 control characters (NUL among them: PostgreSQL refuses it in text) and
# lone surrogates (not encodable as UTF-8: asyncpg refuses them).
_UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _replace_unstorable(match: re.Match[str]) -> str:
    char = match.group()
    if char in "\t\n\r\v\f":
        return " "
    return "\ufffd" if "\ud800" <= char <= "\udfff" else ""


def storable_value(column: str, value: str | None) -> str | None:
    """``value`` as column ``column`` of ``protocols`` stores it on either database:
    control characters dropped (whitespace ones become a space), lone surrogates
    replaced by U+FFFD (what a 'replace' decoding of bad UTF-8 already gives), cut to
    the column's width. Empty becomes None."""
    if value is None:
        return None
    if _UNSTORABLE.search(value):
        value = _UNSTORABLE.sub(_replace_unstorable, value)
    value = value[: WIDTHS[column]]
    return value or None


def storable(call: CallInfo) -> CallInfo:
    """The call's facts exactly as they are stored (and compared) by the issuer."""
    values = {name: storable_value(name, getattr(call, name)) for name in _CALL_COLUMNS}
    if all(values[name] == getattr(call, name) for name in _CALL_COLUMNS):
        return call
    return dataclasses.replace(call, **values)


@dataclass(frozen=True)
class IssuedProtocol:
    number: str
    issued_at: datetime
    issue_date: date
    caller_e164: str | None
    call: CallInfo


# Called inside the issuing transaction, after the batch's rows are inserted, with
# a synchronous SQLAlchemy Connection: lets other features (due dates, notification
# outbox) write in the same commit. Keep hooks set-based (a statement or two per
# batch, rows found by number): they run while up to MAX_BATCH callers wait.
OpenedHook = Callable[[Connection, Sequence[IssuedProtocol]], None]
# Fills more columns of a new protocol row (a dict of column -> value) in place.
RowFiller = Callable[[dict[str, Any]], None]


@dataclass
class _Pending:
    call: CallInfo
    at: datetime
    future: asyncio.Future[IssuedProtocol] = field(repr=False)


class ProtocolIssueError(RuntimeError):
    """No number could be stored (the database is unreachable or refused the write).

    Its message names the error's kind and code only: a database's message may quote
    the values (caller number, name) it refused."""


def describe_error(exc: BaseException) -> str:
    """The kind of a database error without its text (which may quote personal data):
    the exception's class, the driver's class and the error code."""
    parts = [type(exc).__name__]
    orig = getattr(exc, "orig", None)
    if orig is not None:
        cause = orig.__cause__ if orig.__cause__ is not None else orig  # asyncpg's own
        parts.append(type(cause).__name__)
        code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
        if code:
            parts.append(str(code))
    elif isinstance(exc, OSError) and exc.errno:
        parts.append(errno.errorcode.get(exc.errno, str(exc.errno)))
    return " ".join(parts)


def _database_gone(exc: BaseException) -> bool:
    """Errors that would fail every row alike: no point in retrying row by row."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # PostgreSQL's connection exceptions (class 08) and a server shutting down or
    # starting (57P01-57P03: asyncpg raises these as a plain DBAPIError).
    code = str(getattr(getattr(exc, "orig", None), "sqlstate", None) or "")
    if code.startswith(("08", "57P")):
        return True
    return isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError)


class ProtocolIssuer:
    def __init__(
        self,
        engine: AsyncEngine,
        fmt: ProtocolFormat,
        tz: tzinfo,
        *,
        clock: Callable[[], datetime] = utcnow,
        hooks: Sequence[OpenedHook] = (),
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._engine = engine
        self._fmt = fmt
        self._tz = tz
        self._clock = clock
        self._hooks = list(hooks)
        self._after_commit: list[Callable[[Sequence[IssuedProtocol]], None]] = []
        self._fillers: list[RowFiller] = []
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._sync_engine: Engine | None = None
        if is_sqlite(engine):
            self._sync_engine = create_sync_engine(engine.url, busy_timeout_ms=0)
        # The outage reserve (PostgreSQL only; see use_reserve).
        self._journal: Journal | None = None
        self._block = 0
        self._db_timeout = 0.0
        self._outage = False
        self._keeper: asyncio.Task[None] | None = None
        self._keeper_wake = asyncio.Event()
        self._refilling = asyncio.Lock()

    def use_reserve(self, journal: Journal, block: int, db_timeout: float) -> None:
        """Issue from ``journal``'s reserved blocks while the database is gone or does
        not commit within ``db_timeout`` seconds; keep ``block`` values reserved per
        counter key for today and tomorrow (see the module docstring)."""
        if self._sync_engine is not None:
            raise ValueError("the outage reserve is for PostgreSQL (SQLite is a local file)")
        self._journal = journal
        self._block = block
        self._db_timeout = db_timeout

    @property
    def in_outage(self) -> bool:
        """Numbers come from the reserve (the database did not answer)."""
        return self._outage

    def add_hook(self, hook: OpenedHook) -> None:
        self._hooks.append(hook)

    def add_row_filler(self, filler: RowFiller) -> None:
        """``filler(row)`` may set more columns of each new protocol row before the
        insert (e.g. its due date): cheaper than updating the rows afterwards."""
        self._fillers.append(filler)

    def add_after_commit(self, callback: Callable[[Sequence[IssuedProtocol]], None]) -> None:
        """Run ``callback(issued)`` on the loop once a batch is committed (e.g. wake the
        notification worker for the opening SMS the hooks queued)."""
        self._after_commit.append(callback)

    def start(self) -> None:
        """Start the batch worker and, with a reserve, its keeper (on the running loop).
        The call process starts it at once, so that a restarted instance replays what
        its predecessor journaled before its first call; :meth:`issue` starts what is
        not running."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="protocol-issuer")
        if self._journal is not None and (self._keeper is None or self._keeper.done()):
            self._keeper = asyncio.create_task(self._keep(), name="protocol-reserve")

    async def issue(self, call: CallInfo) -> IssuedProtocol:
        """Allocate, store and commit a number for this call; returns once committed."""
        self.start()
        future: asyncio.Future[IssuedProtocol] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(call=call, at=self._clock(), future=future))
        return await future

    async def close(self) -> None:
        for task in (self._worker, self._keeper):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._worker = self._keeper = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()
        if self._journal is not None:
            self._journal.close()

    def dispose_connections(self) -> None:
        """Drop pooled connections (after the database file was replaced, say)."""
        if self._sync_engine is not None:
            self._sync_engine.dispose()

    async def find_issued(self, call: CallInfo) -> IssuedProtocol | None:
        """The protocol already issued to this very call (same linkedid, uniqueid and
        channel), or None. For the dialplan's retry after a crash between the commit
        and SAC_PROTOCOL: a plain indexed query, paid by retries only."""
        call = storable(call)
        if not call.linkedid:
            return None
        query = (
            select(Protocol.number, Protocol.issued_at, Protocol.issue_date, Protocol.caller_e164)
            .where(
                Protocol.linkedid == call.linkedid,
                Protocol.uniqueid.is_not_distinct_from(call.uniqueid),
                Protocol.channel.is_not_distinct_from(call.channel),
            )
            .order_by(Protocol.id)
            .limit(1)
        )
        if self._outage:  # the journal first: the database may not answer at all
            journaled = self._find_journaled(call)
            if journaled is not None:
                return journaled
        try:
            if self._journal is not None:
                row = await self._bounded(self._query_first(query))
            else:
                row = await self._query_first(query)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            journaled = self._find_journaled(call)
            if journaled is not None:
                return journaled
            raise ProtocolIssueError(describe_error(exc)) from None
        if row is None:
            return self._find_journaled(call)
        return IssuedProtocol(
            number=row.number,
            issued_at=row.issued_at,
            issue_date=row.issue_date,
            caller_e164=row.caller_e164,
            call=call,
        )

    async def _query_first(self, query: Any) -> Any:
        async with begin_with_deadline(self._engine, PG_BATCH_TIMEOUT_S) as connection:
            return (await connection.execute(query)).first()

    async def _bounded(self, coro: Any) -> Any:
        """``coro`` given ``protocol_db_timeout``; past it, left to end in the
        background (see _commit_bounded) and TimeoutError raised."""
        task = asyncio.ensure_future(coro)
        try:
            done, _ = await asyncio.wait({task}, timeout=self._db_timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.add_done_callback(_late_batch_done)
        raise TimeoutError(f"no answer within {self._db_timeout} s")

    def _find_journaled(self, call: CallInfo) -> IssuedProtocol | None:
        if self._journal is None or not call.linkedid:
            return None
        try:
            entry = self._journal.find_call(call.linkedid, call.uniqueid, call.channel)
        except Exception as exc:  # a journal that cannot be read is no answer
            log.error("protocol journal not readable (%s)", describe_error(exc))
            return None
        return None if entry is None else _issued_from_entry(entry)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [p for p in batch if not p.future.done()]  # callers gone: no number
            if not live:
                continue
            if self._outage:
                self._issue_from_reserve(live)
                continue
            try:
                issued = await self._commit(live)
            except asyncio.CancelledError:
                for pending in live:
                    pending.future.cancel()
                raise
            except Exception as exc:  # database down, disk full, a row refused, ...
                if self._journal is not None and _database_gone(exc):
                    self._enter_outage(exc)
                    self._issue_from_reserve(live)
                    continue
                if len(live) > 1 and not _database_gone(exc):
                    log.warning(
                        "protocol batch of %d call(s) failed (%s): issuing them one by one",
                        len(live),
                        describe_error(exc),
                    )
                    issued = await self._commit_one_by_one(live)
                else:
                    self._fail(live, exc)
                    continue
            else:
                for pending, protocol in zip(live, issued, strict=True):
                    if not pending.future.done():
                        pending.future.set_result(protocol)
            if issued:
                self._run_after_commit(issued)

    async def _commit_one_by_one(self, batch: list[_Pending]) -> list[IssuedProtocol]:
        """After a failed batch: each call in a transaction of its own (same counters,
        same hooks), so that a row the database refuses fails only its own call.
        Stops at an error that means the database is gone: the rest fail with it."""
        issued: list[IssuedProtocol] = []
        for index, pending in enumerate(batch):
            if pending.future.done():
                continue
            try:
                (protocol,) = await self._commit([pending])
            except asyncio.CancelledError:
                for rest in batch[index:]:
                    rest.future.cancel()
                raise
            except Exception as exc:
                if self._journal is not None and _database_gone(exc):
                    self._enter_outage(exc)
                    self._issue_from_reserve([p for p in batch[index:] if not p.future.done()])
                    break
                self._fail([pending], exc)
                if _database_gone(exc):
                    self._fail(batch[index + 1 :], exc)
                    break
            else:
                if not pending.future.done():
                    pending.future.set_result(protocol)
                issued.append(protocol)
            await asyncio.sleep(0)  # SQLite commits on the loop: let calls go on between rows
        return issued

    @staticmethod
    def _fail(batch: Sequence[_Pending], exc: BaseException) -> None:
        live = [p for p in batch if not p.future.done()]
        if not live:
            return
        reason = describe_error(exc)
        log.error("protocol issue failed for %d call(s): %s", len(live), reason)
        for pending in live:
            pending.future.set_exception(ProtocolIssueError(reason))

    def _run_after_commit(self, issued: list[IssuedProtocol]) -> None:
        for callback in self._after_commit:
            try:
                callback(issued)
            except Exception:  # never let a side job stop the issuing of numbers
                log.exception("after-commit callback failed")

    async def _commit(self, batch: list[_Pending]) -> list[IssuedProtocol]:
        requests = [(p.call, p.at) for p in batch]
        if self._sync_engine is None and self._journal is not None:
            return await self._commit_bounded(requests)
        if self._sync_engine is None:
            async with begin_with_deadline(self._engine, PG_BATCH_TIMEOUT_S) as connection:
                return await connection.run_sync(self._write, requests)
        # SQLite: on the loop, see the module docstring.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SQLITE_LOCK_WAIT_S
        pause = 0.0005
        while True:
            try:
                with self._sync_engine.begin() as connection:
                    return self._write(connection, requests)
            except OperationalError as exc:
                if not _sqlite_busy(exc) or loop.time() > deadline:
                    raise
            await asyncio.sleep(pause)  # let the lock holder finish
            pause = min(pause * 2, SQLITE_LOCK_POLL_MAX_S)

    def _write(
        self, connection: Connection, requests: list[tuple[CallInfo, datetime]]
    ) -> list[IssuedProtocol]:
        issued = write_batch(connection, self._fmt, self._tz, requests, self._fillers)
        for hook in self._hooks:
            hook(connection, issued)
        return issued

    # -- the outage reserve ---------------------------------------------------------

    async def _commit_bounded(
        self, requests: list[tuple[CallInfo, datetime]]
    ) -> list[IssuedProtocol]:
        """The batch's transaction, given ``protocol_db_timeout`` to commit. Past it
        the transaction is left to fail (or to roll back once the server answers) in
        the background and TimeoutError sends the callers to the reserve. A task of
        its own, not a cancellation: a cancelled transaction's rollback would wait
        on the very server that does not answer."""
        abandoned: list[bool] = [False]
        try:
            issued: list[IssuedProtocol] = await self._bounded(
                self._commit_unless_abandoned(requests, abandoned)
            )
        except TimeoutError:
            abandoned[0] = True
            raise
        return issued

    async def _commit_unless_abandoned(
        self, requests: list[tuple[CallInfo, datetime]], abandoned: list[bool]
    ) -> list[IssuedProtocol]:
        # The connection is cut at PG_BATCH_TIMEOUT_S: an abandoned batch on a server
        # that never answers does not hold its connection for ever.
        async with begin_with_deadline(self._engine, PG_BATCH_TIMEOUT_S) as connection:
            issued = await connection.run_sync(self._write, requests)
            if abandoned[0]:  # its callers got reserve numbers: roll back
                raise TimeoutError("batch abandoned")
        return issued

    def _enter_outage(self, exc: BaseException) -> None:
        if self._outage:
            return
        self._outage = True
        log.error(
            "the database does not answer (%s): numbers come from the local reserve until it does",
            describe_error(exc),
        )
        self._keeper_wake.set()
        self.start()  # the keeper, if it is not running

    def _issue_from_reserve(self, batch: Sequence[_Pending]) -> None:
        """Numbers from the reserve, journaled (one fsync) before they are returned."""
        assert self._journal is not None
        live = [p for p in batch if not p.future.done()]
        if not live:
            return
        requests = [(storable(p.call), p.at) for p in live]
        dates = [at.astimezone(self._tz).date() for _, at in requests]
        keys = [self._fmt.counter_key(day) for day in dates]
        numbers: list[str | None] = []

        def entries(taken: list[Taken | None]) -> list[tuple[Any, ...]]:
            rows: list[tuple[Any, ...]] = []
            numbers.clear()
            for got, (call, at), day in zip(taken, requests, dates, strict=True):
                if got is None:
                    numbers.append(None)
                    continue
                number = self._fmt.render(day, got.sequence)
                numbers.append(number)
                rows.append(
                    (
                        number,
                        got.key,
                        got.sequence,
                        at.isoformat(),
                        day.isoformat(),
                        *(getattr(call, name) for name in CALL_FIELDS),
                    )
                )
            return rows

        try:
            self._journal.take(keys, entries)
        except Exception as exc:  # the journal's disk: nothing was handed out
            log.critical("protocol journal failed (%s): no number", describe_error(exc))
            self._fail(live, exc)
            return
        exhausted = 0
        for pending, number, (call, at), day in zip(live, numbers, requests, dates, strict=True):
            if number is None:
                exhausted += 1
                pending.future.set_exception(ProtocolIssueError("outage reserve exhausted"))
                continue
            pending.future.set_result(
                IssuedProtocol(
                    number=number,
                    issued_at=at,
                    issue_date=day,
                    caller_e164=normalize_phone(call.caller_number),
                    call=call,
                )
            )
        if exhausted:
            log.critical(
                "outage reserve exhausted: %d call(s) got no number (raise protocol_reserve_block)",
                exhausted,
            )

    async def _keep(self) -> None:
        """Replays the journal when the database answers, and keeps the reserve full."""
        assert self._journal is not None
        while True:
            # Cleared before the work, not after: an outage that begins meanwhile
            # (set by the worker) ends the wait below at once.
            self._keeper_wake.clear()
            delay = RESERVE_REFRESH_S
            waiting = False  # journaled protocols not yet in the database
            try:
                waiting = bool(self._journal.pending_count())
                if self._outage or waiting:
                    await self.replay()
                    if self._journal.pending_count():
                        continue  # more came in meanwhile
                    if self._outage:
                        self._outage = False
                        log.warning("the database answers again: issuing numbers normally")
                await self.refill_reserve()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A process started during the outage has protocols to replay before
                # any call of its own meets the database: try again soon as well.
                delay = OUTAGE_RETRY_S if self._outage or waiting else RESERVE_REFRESH_S
                if waiting and _database_gone(exc):
                    self._enter_outage(exc)  # calls need not find it out themselves
                elif not self._outage:
                    log.warning(
                        "outage reserve: the database did not answer (%s)", describe_error(exc)
                    )
            try:
                await asyncio.wait_for(self._keeper_wake.wait(), delay)
            except TimeoutError:
                pass

    async def refill_reserve(self) -> None:
        """Reserve a block for today's and tomorrow's counter keys that hold less than
        half a block, and forget what is past."""
        journal = self._journal
        if journal is None or self._block <= 0:
            return
        async with self._refilling:  # the keeper and a caller of this method alike
            await self._refill(journal)

    async def _refill(self, journal: Journal) -> None:
        now = self._clock()
        today = now.astimezone(self._tz).date()
        for key in dict.fromkeys(
            self._fmt.counter_key(day) for day in (today, today + timedelta(days=1))
        ):
            if journal.remaining(key) * 2 >= self._block:
                continue
            async with begin_with_deadline(self._engine, PG_BATCH_TIMEOUT_S) as connection:
                last = await connection.run_sync(_bump_counter, key, self._block)
            first = last - self._block + 1
            journal.add_block(key, first, last, now)
            log.info("reserved protocol values %s %d-%d for a database outage", key, first, last)
        journal.drop_blocks_before(self._fmt.counter_key(today - timedelta(days=1)))
        journal.drop_replayed_before(now - JOURNAL_KEEP)

    async def replay(self) -> int:
        """Store the journaled protocols not yet in the database (idempotent); returns
        how many rows this call inserted. Always asks the database at least once."""
        journal = self._journal
        if journal is None:
            return 0
        inserted = 0
        entries = journal.pending(REPLAY_CHUNK)
        if not entries:
            async with begin_with_deadline(self._engine, PG_BATCH_TIMEOUT_S) as connection:
                await connection.exec_driver_sql("SELECT 1")
            return 0
        while entries:
            async with begin_with_deadline(self._engine, PG_BATCH_TIMEOUT_S) as connection:
                issued = await connection.run_sync(self._write_replay, entries)
            journal.mark_replayed([entry.number for entry in entries], self._clock())
            inserted += len(issued)
            if issued:
                self._run_after_commit(issued)
            entries = journal.pending(REPLAY_CHUNK)
        log.warning("replayed %d protocol(s) issued from the outage reserve", inserted)
        return inserted

    def _write_replay(
        self, connection: Connection, entries: Sequence[JournalEntry]
    ) -> list[IssuedProtocol]:
        rows: list[dict[str, Any]] = []
        for entry in entries:
            row = _protocol_row(
                entry.number, entry.issued_at, entry.issue_date, CallInfo(**entry.call)
            )
            for filler in self._fillers:
                filler(row)
            rows.append(row)
        stored = set(connection.execute(_INSERT_REPLAYED, rows).scalars())
        issued = [_issued_from_entry(entry) for entry in entries if entry.number in stored]
        if issued:
            connection.execute(INSERT_OPENED_EVENTS, {"numbers": [p.number for p in issued]})
            for hook in self._hooks:
                hook(connection, issued)
        return issued


def _late_batch_done(task: asyncio.Future[Any]) -> None:
    """An abandoned batch or query ended: rolled back, or failed with its connection."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("abandoned protocol batch: %s", describe_error(task.exception()))  # type: ignore[arg-type]


def _issued_from_entry(entry: JournalEntry) -> IssuedProtocol:
    call = CallInfo(**entry.call)
    return IssuedProtocol(
        number=entry.number,
        issued_at=entry.issued_at,
        issue_date=entry.issue_date,
        caller_e164=normalize_phone(call.caller_number),
        call=call,
    )


def _protocol_row(number: str, at: datetime, local_date: date, call: CallInfo) -> dict[str, Any]:
    return {
        "number": number,
        "issued_at": at,
        "issue_date": local_date,
        "caller_number": call.caller_number,
        "caller_e164": normalize_phone(call.caller_number),
        "caller_name": call.caller_name,
        "called_number": call.called_number,
        "uniqueid": call.uniqueid,
        "linkedid": call.linkedid,
        "channel": call.channel,
        "status": "open",
        "updated_at": at,
        "due_at": None,
    }


def write_batch(
    connection: Connection,
    fmt: ProtocolFormat,
    tz: tzinfo,
    requests: Sequence[tuple[CallInfo, datetime]],
    fillers: Sequence[RowFiller] = (),
) -> list[IssuedProtocol]:
    """Reserve numbers for the batch and insert its rows (the caller commits)."""
    by_key: dict[str, list[tuple[int, date]]] = {}
    for index, (_, at) in enumerate(requests):
        local_date = at.astimezone(tz).date()
        by_key.setdefault(fmt.counter_key(local_date), []).append((index, local_date))

    requests = [(storable(call), at) for call, at in requests]
    rows: list[dict[str, Any]] = [{} for _ in requests]
    for key, members in by_key.items():
        last = _bump_counter(connection, key, len(members))
        for offset, (index, local_date) in enumerate(members):
            sequence = last - len(members) + 1 + offset
            if fmt.overflowed(sequence):
                log.critical(
                    "protocol sequence %s overflowed its width (%d): issuing a longer number; "
                    "widen the format before this reaches callers' paperwork",
                    key,
                    sequence,
                )
            call, at = requests[index]
            rows[index] = _protocol_row(fmt.render(local_date, sequence), at, local_date, call)
            for filler in fillers:
                filler(rows[index])
    # Plain executemany: RETURNING would make SQLAlchemy insert row by row.
    connection.execute(_INSERT_PROTOCOLS, rows)
    connection.execute(INSERT_OPENED_EVENTS, {"numbers": [row["number"] for row in rows]})
    return [
        IssuedProtocol(
            number=row["number"],
            issued_at=row["issued_at"],
            issue_date=row["issue_date"],
            caller_e164=row["caller_e164"],
            call=call,
        )
        for row, (call, _) in zip(rows, requests, strict=True)
    ]


# Built once: constructing statements per batch was a visible share of its CPU.
_INSERT_PROTOCOLS = insert(Protocol.__table__)
# The replay: a number already stored (an earlier replay) is left alone and not returned.
_INSERT_REPLAYED = (
    postgresql.insert(Protocol.__table__)
    .on_conflict_do_nothing(index_elements=["number"])
    .returning(Protocol.__table__.c.number)
)


def _upsert_counter(ins: Any) -> Any:
    count = bindparam("count", type_=BigInteger)
    return (
        ins(ProtocolCounter)
        .values(key=bindparam("key"), value=count)
        .on_conflict_do_update(
            index_elements=[ProtocolCounter.key],
            set_={"value": ProtocolCounter.value + count},
        )
        .returning(ProtocolCounter.value)
    )


_BUMP_COUNTER = {
    "postgresql": _upsert_counter(postgresql.insert),
    "sqlite": _upsert_counter(sqlite.insert),
}


def _sqlite_busy(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code in (5, 6) or "database is locked" in str(exc.orig)  # SQLITE_BUSY/LOCKED


def _bump_counter(connection: Connection, key: str, count: int) -> int:
    """Reserve ``count`` values of counter ``key``; returns the last one reserved."""
    stmt = _BUMP_COUNTER["postgresql" if connection.dialect.name == "postgresql" else "sqlite"]
    return int(connection.execute(stmt, {"key": key, "count": count}).scalar_one())
