"""Issuing protocol numbers: unique, durable before they are spoken, fast under load.

Every call waits for its number in a queue. One worker takes all the calls waiting
at that moment and, in ONE transaction, bumps each day's counter by the batch size
and inserts the batch's rows; the commit (an fsync) is shared by the whole batch,
which is what keeps p99 low at 100 concurrent calls (group commit). A number is
handed back only after its row is committed.

Uniqueness does not depend on this process: the counter is bumped by the database
(``INSERT … ON CONFLICT DO UPDATE … RETURNING``), row-locked in PostgreSQL and under
SQLite's single-writer lock, and ``protocols.number`` is UNIQUE as a last guard.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sac_ivr.db.base import utcnow
from sac_ivr.phones import normalize_phone
from sac_ivr.protocols.models import Protocol, ProtocolCounter, ProtocolEvent
from sac_ivr.protocols.numbering import ProtocolFormat

log = logging.getLogger(__name__)

MAX_BATCH = 256


@dataclass(frozen=True)
class CallInfo:
    """What the channel tells us about the call that needs a number."""

    caller_number: str | None = None
    caller_name: str | None = None
    called_number: str | None = None
    uniqueid: str | None = None
    linkedid: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class IssuedProtocol:
    id: int
    number: str
    issued_at: datetime
    issue_date: date
    caller_e164: str | None
    call: CallInfo


# Called inside the issuing transaction, after the rows are inserted: lets other
# features (deadlines, notification outbox) write in the same commit.
OpenedHook = Callable[[AsyncSession, Sequence[IssuedProtocol]], Awaitable[None]]


@dataclass
class _Pending:
    call: CallInfo
    at: datetime
    future: asyncio.Future[IssuedProtocol] = field(repr=False)


class ProtocolIssuer:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        fmt: ProtocolFormat,
        tz: tzinfo,
        *,
        clock: Callable[[], datetime] = utcnow,
        hooks: Sequence[OpenedHook] = (),
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._fmt = fmt
        self._tz = tz
        self._clock = clock
        self._hooks = list(hooks)
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def add_hook(self, hook: OpenedHook) -> None:
        self._hooks.append(hook)

    async def issue(self, call: CallInfo) -> IssuedProtocol:
        """Allocate, store and commit a number for this call; returns once committed."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="protocol-issuer")
        future: asyncio.Future[IssuedProtocol] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(call=call, at=self._clock(), future=future))
        return await future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [p for p in batch if not p.future.done()]  # callers gone: no number
            if not live:
                continue
            try:
                issued = await self._commit(live)
            except asyncio.CancelledError:
                for pending in live:
                    pending.future.cancel()
                raise
            except Exception as exc:  # database down, disk full, ...
                log.error("protocol issue failed for %d call(s): %s", len(live), exc)
                for pending in live:
                    if not pending.future.done():
                        pending.future.set_exception(ProtocolIssueError(str(exc)))
                continue
            for pending, protocol in zip(live, issued, strict=True):
                if not pending.future.done():
                    pending.future.set_result(protocol)

    async def _commit(self, batch: list[_Pending]) -> list[IssuedProtocol]:
        by_key: dict[str, list[tuple[int, date]]] = {}
        for index, pending in enumerate(batch):
            local_date = pending.at.astimezone(self._tz).date()
            by_key.setdefault(self._fmt.counter_key(local_date), []).append((index, local_date))

        rows: list[dict[str, Any] | None] = [None] * len(batch)
        async with self._sessionmaker() as session, session.begin():
            for key, members in by_key.items():
                last = await _bump_counter(session, key, len(members))
                for offset, (index, local_date) in enumerate(members):
                    sequence = last - len(members) + 1 + offset
                    if self._fmt.overflowed(sequence):
                        log.critical(
                            "protocol sequence %s overflowed its width (%d): issuing a longer "
                            "number; widen the format before this reaches callers' paperwork",
                            key,
                            sequence,
                        )
                    call = batch[index].call
                    rows[index] = {
                        "number": self._fmt.render(local_date, sequence),
                        "issued_at": batch[index].at,
                        "issue_date": local_date,
                        "caller_number": call.caller_number,
                        "caller_e164": normalize_phone(call.caller_number),
                        "caller_name": call.caller_name,
                        "called_number": call.called_number,
                        "uniqueid": call.uniqueid,
                        "linkedid": call.linkedid,
                        "channel": call.channel,
                        "status": "open",
                        "updated_at": batch[index].at,
                    }
            result = await session.execute(
                insert(Protocol).returning(
                    Protocol.id, Protocol.number, sort_by_parameter_order=True
                ),
                rows,
            )
            ids = [row.id for row in result]
            await session.execute(
                insert(ProtocolEvent),
                [
                    {
                        "protocol_id": pid,
                        "at": row["issued_at"],
                        "actor": "system",
                        "kind": "opened",
                        "to_status": "open",
                        "data": {"uniqueid": row["uniqueid"], "channel": row["channel"]},
                    }
                    for pid, row in zip(ids, rows, strict=True)
                    if row is not None
                ],
            )
            issued = [
                IssuedProtocol(
                    id=pid,
                    number=row["number"],
                    issued_at=row["issued_at"],
                    issue_date=row["issue_date"],
                    caller_e164=row["caller_e164"],
                    call=pending.call,
                )
                for pid, row, pending in zip(ids, rows, batch, strict=True)
                if row is not None
            ]
            for hook in self._hooks:
                await hook(session, issued)
        return issued


class ProtocolIssueError(RuntimeError):
    """No number could be stored (the database is unreachable or refused the write)."""


async def _bump_counter(session: AsyncSession, key: str, count: int) -> int:
    """Reserve ``count`` values of counter ``key``; returns the last one reserved."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        ins(ProtocolCounter)
        .values(key=key, value=count)
        .on_conflict_do_update(
            index_elements=[ProtocolCounter.key],
            set_={"value": ProtocolCounter.value + count},
        )
        .returning(ProtocolCounter.value)
    )
    return int((await session.execute(stmt)).scalar_one())
