"""The access log and the public lookup counters.

Both are written in the background, in batches: a read of personal data only adds
an entry to a list in memory (the answer never waits for the database), and a task
writes what accumulated about once a second in one transaction; the counters are
added up in memory and written once a minute. ``flush()`` writes at once (the
query endpoints call it first, so a supervisor sees every read made until then), and
closing the service writes what is left. While the database is unreachable entries
wait in memory (up to ``MAX_PENDING``) and are written when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.audit.tables import AccessLogEntry, AccessLogProtocol, PublicLookupCount
from sac_ivr.auth.clients import client_address
from sac_ivr.auth.keys import key, keyed_hash
from sac_ivr.db.base import utcnow
from sac_ivr.http.context import core_of

if TYPE_CHECKING:
    from sac_ivr.auth.services import Identity
    from sac_ivr.core import Core

log = logging.getLogger(__name__)

ACCESS_FLUSH_S = 1.0
COUNTS_FLUSH_S = 60.0
MAX_PENDING = 50_000

# What a read was (the ``action`` column).
ACTIONS = (
    "protocol.read",  # one protocol's full record
    "protocols.list",  # protocols listed or searched (phone, CPF/CNPJ, status, due)
    "calls.list",  # the call log listed or searched
    "history.read",  # a customer's history of demands
    "history_requests.list",  # history requests (they hold the customer's identifiers)
    "history_request.read",
    "history_request.document",
)

# Outcomes of a public lookup (one per request).
OUTCOMES = ("found", "not_found", "invalid", "verified", "verify_failed", "limited")


# ------------------------------------------------------------------ access log


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

    def __init__(self, core: Core) -> None:
        self.core = core
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

    def __init__(self, core: Core) -> None:
        super().__init__(core)
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
            async with self.core.sessionmaker() as session, session.begin():
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


def access_log_of(core: Core) -> AccessLog:
    log_ = core.extras.get("access_log")
    if log_ is None:
        log_ = core.extras["access_log"] = AccessLog(core)
    return log_


def endpoint_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    return f"{request.method} {path}"[:128]


async def search_hashes(
    core: Core, phone: str | None, document: str | None
) -> tuple[str | None, str | None]:
    """Keyed hashes of a normalised phone (E.164) and CPF/CNPJ (no punctuation)."""
    if not phone and not document:
        return None, None
    secret = await key(core, "access_log")
    return (
        keyed_hash(secret, "phone", phone) if phone else None,
        keyed_hash(secret, "document", document) if document else None,
    )


async def record_read(
    request: web.Request,
    identity: Identity,
    action: str,
    *,
    protocols: Iterable[str | None] = (),
    phone: str | None = None,
    document: str | None = None,
    rows: int | None = None,
) -> None:
    """Log that ``identity`` read customers' data: the protocols shown, the phone or
    CPF/CNPJ searched for (as keyed hashes), how many records the answer held."""
    if action not in ACTIONS:
        raise ValueError(f"unknown access log action {action!r}")
    core = core_of(request)
    numbers = tuple(sorted({n for n in protocols if n}))
    phone_hash, document_hash = await search_hashes(core, phone, document)
    access_log_of(core).add(
        AccessRecord(
            at=utcnow(),
            actor=identity.name,
            role=identity.role,
            action=action,
            endpoint=endpoint_of(request),
            client=client_address(request, core.settings.trusted_proxies)[:64],
            phone_hash=phone_hash,
            document_hash=document_hash,
            rows=len(numbers) if rows is None else rows,
            protocols=numbers,
        )
    )


@dataclass(frozen=True)
class AccessFilter:
    actor: str | None = None
    action: str | None = None
    protocol: str | None = None
    phone_hash: str | None = None
    document_hash: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def find_accesses(
    session: AsyncSession, flt: AccessFilter, limit: int, offset: int
) -> tuple[list[tuple[AccessLogEntry, list[str]]], int]:
    """Entries matching the filter, newest first, each with its protocols."""
    query = select(AccessLogEntry)
    if flt.actor:
        query = query.where(AccessLogEntry.actor == flt.actor)
    if flt.action:
        query = query.where(AccessLogEntry.action == flt.action)
    if flt.protocol:
        query = query.where(
            AccessLogEntry.id.in_(
                select(AccessLogProtocol.entry_id).where(AccessLogProtocol.number == flt.protocol)
            )
        )
    if flt.phone_hash:
        query = query.where(AccessLogEntry.phone_hash == flt.phone_hash)
    if flt.document_hash:
        query = query.where(AccessLogEntry.document_hash == flt.document_hash)
    if flt.since is not None:
        query = query.where(AccessLogEntry.at >= flt.since)
    if flt.until is not None:
        query = query.where(AccessLogEntry.at < flt.until)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    entries = (
        await session.scalars(
            query.order_by(AccessLogEntry.at.desc(), AccessLogEntry.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    numbers: dict[int, list[str]] = {e.id: [] for e in entries}
    if entries:
        rows = await session.execute(
            select(AccessLogProtocol.entry_id, AccessLogProtocol.number)
            .where(AccessLogProtocol.entry_id.in_(list(numbers)))
            .order_by(AccessLogProtocol.number)
        )
        for entry_id, number in rows:
            numbers[entry_id].append(number)
    return [(e, numbers[e.id]) for e in entries], int(total or 0)


# --------------------------------------------------------- public lookup counts


class LookupCounters(_Batcher):
    """Public lookups by outcome: since this process started (``since_start``), and
    per local day in the database (``public_lookup_counts``), for every instance."""

    interval = COUNTS_FLUSH_S
    what = "lookup counts"

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self.since_start: Counter[str] = Counter()
        self._pending: Counter[tuple[date, str]] = Counter()

    def _pending_count(self) -> int:
        return len(self._pending)

    def count(self, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown lookup outcome {outcome!r}")
        self.since_start[outcome] += 1
        self._pending[(utcnow().astimezone(self.core.settings.tz).date(), outcome)] += 1
        self._wake()

    async def _write(self) -> None:
        batch, self._pending = self._pending, Counter()
        if not batch:
            return
        postgres = self.core.engine.dialect.name == "postgresql"
        insert = pg_insert if postgres else sqlite_insert
        try:
            async with self.core.sessionmaker() as session, session.begin():
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


def lookup_counters_of(core: Core) -> LookupCounters:
    counters = core.extras.get("lookup_counters")
    if counters is None:
        counters = core.extras["lookup_counters"] = LookupCounters(core)
    return counters


def count_lookup(core: Core, outcome: str) -> None:
    """The one place public lookups are counted (a metrics exporter reads the same)."""
    lookup_counters_of(core).count(outcome)


async def lookup_counts(
    session: AsyncSession, since: date | None, until: date | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Per day, newest first: ``{day, found, not_found, …}`` (days without lookups
    are not listed)."""
    days_query = select(PublicLookupCount.day).distinct()
    if since is not None:
        days_query = days_query.where(PublicLookupCount.day >= since)
    if until is not None:
        days_query = days_query.where(PublicLookupCount.day <= until)
    total = await session.scalar(select(func.count()).select_from(days_query.subquery()))
    days: Sequence[date] = (
        await session.scalars(
            days_query.order_by(PublicLookupCount.day.desc()).limit(limit).offset(offset)
        )
    ).all()
    by_day: dict[date, dict[str, Any]] = {
        d: {"day": d.isoformat(), **dict.fromkeys(OUTCOMES, 0)} for d in days
    }
    if days:
        rows = await session.execute(
            select(PublicLookupCount.day, PublicLookupCount.outcome, PublicLookupCount.count).where(
                PublicLookupCount.day.in_(list(days))
            )
        )
        for day, outcome, n in rows:
            if outcome in OUTCOMES:
                by_day[day][outcome] = int(n)
    return [by_day[d] for d in days], int(total or 0)
