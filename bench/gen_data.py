"""A large SAC database for benchmarks and load tests: protocols with their timelines,
calls and notifications, spread over many days, as a busy SAC accumulates them.

    python -m bench.gen_data DATABASE_URL [--protocols 1000000] [--days 800] [--seed 1]

The database must be migrated already (``sac-ivr db upgrade``); rows are added to
what is there. Protocol numbers are real numbers of the configured format (check
digit included) and the day counters are moved past them, so a service started on the
database goes on issuing without a collision.

What a protocol gets (fixed proportions, random but reproducible with ``--seed``):

- a caller: most customers call once or a few times; some customers have 50
  protocols and one has 500 (the heavy histories the lookups must stay fast for);
  about half the customers give a CPF;
- a status by age: older requests are mostly closed or resolved, some were cancelled
  and some are still pending (long overdue); recent ones are spread over the pending
  statuses;
- a timeline: ``opened``, the menu choice or the subject set by an agent, each status
  change by an agent, and a notification result per change (about 8 entries);
- one call in the call log (answered by an agent of the pool, or abandoned) and one
  or two outbox messages (sent).

Rows are written with each driver's bulk path (sqlite3 ``executemany``, asyncpg
``COPY``), in chunks: on the 2-core bench machine a million protocols take about
8 minutes, five million about 40 (PostgreSQL). The run ends with ``ANALYZE`` (SQLite)
or ``VACUUM ANALYZE`` (PostgreSQL): the state autovacuum keeps a database in service in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Date
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sac_ivr.calls.tables import CallLog  # noqa: E402
from sac_ivr.config import Settings  # noqa: E402
from sac_ivr.db.base import UtcDateTime  # noqa: E402
from sac_ivr.notifications.tables import OutboxMessage  # noqa: E402
from sac_ivr.protocols.numbering import make_format  # noqa: E402
from sac_ivr.protocols.tables import Protocol, ProtocolCounter, ProtocolEvent  # noqa: E402

CHUNK = 20_000
AGENTS = [f"agente{n:02d}" for n in range(1, 41)]
SUBJECTS = ["information", "complaint", "cancellation", "billing", "technical", "suggestion"]
DEPARTMENTS = ["customer_service", "billing", "technical", "retention", "ombudsman"]
PENDING_PATH = ["open", "forwarded", "in_progress", "waiting_customer"]
# Heavy customers: (protocols each, how many such customers).
HEAVY_CUSTOMERS = ((500, 1), (50, 10))


@dataclass
class Stats:
    protocols: int = 0
    events: int = 0
    calls: int = 0
    outbox: int = 0
    seconds: float = 0.0
    heavy_phones: dict[int, list[str]] = field(default_factory=dict)


@dataclass
class Chunk:
    protocols: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)


def _phone(customer: int) -> str:
    return f"+55119{customer:08d}"


def _cpf(customer: int) -> str:
    """A valid CPF (mod-11 check digits) made from the customer id."""
    digits = [int(d) for d in f"{(customer * 7919) % 10**9:09d}"]
    for length in (9, 10):
        total = sum(d * w for d, w in zip(digits, range(length + 1, 1, -1), strict=True))
        digits.append(total * 10 % 11 % 10)
    return "".join(map(str, digits))


class Generator:
    def __init__(self, settings: Settings, total: int, days: int, seed: int, now: datetime):
        self.settings = settings
        self.fmt = make_format(settings)
        self.tz = settings.tz
        self.total = total
        self.days = days
        self.rng = random.Random(seed)
        self.now = now
        self.sequence: dict[str, int] = {}
        self.heavy: dict[int, list[str]] = {}  # protocols each -> those customers' phones
        self.customers = self._customers()

    def _customers(self) -> list[int]:
        """One customer id per protocol: heavy customers first, then a long tail where
        most customers call once."""
        ids: list[int] = []
        next_id = 1
        for count, how_many in HEAVY_CUSTOMERS:
            for _ in range(how_many):
                if len(ids) + count > self.total // 2:
                    break
                ids.extend([next_id] * count)
                self.heavy.setdefault(count, []).append(_phone(next_id))
                next_id += 1
        while len(ids) < self.total:
            repeats = 1 if self.rng.random() < 0.8 else self.rng.randint(2, 6)
            ids.extend([next_id] * repeats)
            next_id += 1
        ids = ids[: self.total]
        self.rng.shuffle(ids)
        return ids

    def issue_times(self) -> list[datetime]:
        start = self.now - timedelta(days=self.days)
        span = (self.now - start).total_seconds() - 60
        times = [start + timedelta(seconds=self.rng.random() * span) for _ in range(self.total)]
        times.sort()
        return times

    def chunks(self, first_id: int) -> Iterator[Chunk]:
        times = self.issue_times()
        for offset in range(0, self.total, CHUNK):
            chunk = Chunk()
            for index in range(offset, min(offset + CHUNK, self.total)):
                self._protocol(chunk, first_id + index, times[index], self.customers[index])
            yield chunk

    def _protocol(self, chunk: Chunk, pid: int, at: datetime, customer: int) -> None:
        rng = self.rng
        local_day = at.astimezone(self.tz).date()
        key = self.fmt.counter_key(local_day)
        seq = self.sequence.get(key, 0) + 1
        self.sequence[key] = seq
        number = self.fmt.render(local_day, seq)
        phone = _phone(customer)
        age_days = (self.now - at).total_seconds() / 86400
        subject = rng.choice(SUBJECTS)
        department = rng.choice(DEPARTMENTS)
        agent = rng.choice(AGENTS)
        due = at + timedelta(days=7)
        # Where the request is now.
        roll = rng.random()
        if age_days > 30:
            path = (
                ["open", "forwarded", "in_progress", "resolved", "closed"]
                if roll < 0.80
                else ["open", "in_progress", "resolved"]
                if roll < 0.90
                else ["open", "cancelled"]
                if roll < 0.95
                else ["open", "forwarded"]  # forgotten: long overdue
            )
        else:
            path = (
                PENDING_PATH[: rng.randint(1, len(PENDING_PATH))]
                if roll < 0.6
                else ["open", "in_progress", "resolved"]
            )
        status = path[-1]
        # Status changes spread over the first days of the request's life.
        horizon = min(age_days, 12.0)
        steps = sorted(rng.random() * horizon for _ in path[1:])
        change_times = [at + timedelta(days=d) for d in steps]
        resolved_at = None
        for to_status, when in zip(path[1:], change_times, strict=True):
            if to_status in ("resolved", "cancelled") and resolved_at is None:
                resolved_at = when
        updated = change_times[-1] if change_times else at
        with_cpf = customer % 2 == 0
        chunk.protocols.append(
            {
                "id": pid,
                "number": number,
                "issued_at": at,
                "issue_date": local_day,
                "channel_kind": "phone",
                "caller_number": phone[3:],
                "caller_e164": phone,
                "caller_name": None,
                "called_number": "08001234567",
                "uniqueid": f"{at.timestamp():.0f}.{pid}",
                "linkedid": f"{at.timestamp():.0f}.{pid}",
                "channel": f"PJSIP/trunk-{pid:08x}",
                "status": status,
                "subject": subject,
                "department": department if len(path) > 2 else None,
                "agent": agent if len(path) > 1 else None,
                "customer_document": _cpf(customer) if with_cpf else None,
                "customer_name": f"Cliente {customer}",
                "customer_email": f"cliente{customer}@example.com" if with_cpf else None,
                "customer_phone": phone,
                "notes": None,
                "updated_at": updated,
                "due_at": due,
                "resolved_at": resolved_at,
                "anonymised_at": None,
            }
        )
        events = chunk.events
        events.append(_event(pid, at, "system", "opened", to_status="open"))
        events.append(
            _event(
                pid,
                at + timedelta(seconds=40),
                agent,
                "field",
                data={"subject": {"from": None, "to": subject}},
            )
        )
        previous = "open"
        for to_status, when in zip(path[1:], change_times, strict=True):
            events.append(
                _event(
                    pid,
                    when,
                    agent,
                    "status",
                    from_status=previous,
                    to_status=to_status,
                    department=department,
                    customer_note="Sua solicitação foi atualizada.",
                )
            )
            events.append(
                _event(
                    pid,
                    when + timedelta(seconds=5),
                    "system",
                    "notification_sent",
                    data={"channel": "sms"},
                )
            )
            previous = to_status
        answered = rng.random() < 0.85
        wait = rng.uniform(2, 90)
        talk = rng.uniform(60, 600) if answered else None
        queue_at = at + timedelta(seconds=25)
        answered_at = queue_at + timedelta(seconds=wait) if answered else None
        ended = (answered_at + timedelta(seconds=talk)) if answered_at and talk else queue_at
        ended = ended + timedelta(seconds=0 if answered else wait)
        chunk.calls.append(
            {
                "linkedid": f"{at.timestamp():.0f}.{pid}",
                "protocol_number": number,
                "caller_number": phone[3:],
                "caller_e164": phone,
                "caller_name": None,
                "called_number": "08001234567",
                "channel": f"PJSIP/trunk-{pid:08x}",
                "started_at": at,
                "line_answered_at": at,
                "queue": "sac-agents",
                "queue_entered_at": queue_at,
                "queue_left_at": answered_at or ended,
                "wait_s": round(wait, 1),
                "answered_at": answered_at,
                "agent_interface": f"PJSIP/{AGENTS.index(agent) + 1001}" if answered else None,
                "agent_name": agent if answered else None,
                "talk_s": round(talk, 1) if talk else None,
                "transfers": "[]",
                "ended_at": ended,
                "duration_s": round((ended - at).total_seconds(), 1),
                "hangup_cause": 16,
                "hangup_cause_text": "Normal Clearing",
                "recording_file": None,
                "outcome": "answered" if answered else "abandoned",
                "reconciled": False,
                "state": "{}",
                "last_event_at": ended,
                "updated_at": ended,
            }
        )
        chunk.outbox.append(
            {
                "key": f"gen-{pid}-opened",
                "protocol_id": pid,
                "event_id": None,
                "kind": "opened",
                "channel": "sms",
                "recipient": phone,
                "subject": None,
                "body": f"Protocolo {number} registrado.",
                "body_html": None,
                "data": None,
                "status": "sent",
                "attempts": 1,
                "next_attempt_at": at,
                "lease_until": None,
                "claimed_by": None,
                "last_error": None,
                "provider_id": f"gen-{pid}",
                "created_at": at,
                "sent_at": at + timedelta(seconds=2),
            }
        )

    def counters(self) -> list[tuple[str, int]]:
        return sorted(self.sequence.items())


def _event(
    pid: int,
    at: datetime,
    actor: str,
    kind: str,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    department: str | None = None,
    customer_note: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "protocol_id": pid,
        "at": at,
        "actor": actor,
        "kind": kind,
        "from_status": from_status,
        "to_status": to_status,
        "department": department,
        "customer_note": customer_note,
        "internal_note": None,
        "data": json.dumps(data) if data is not None else None,
    }


# -------------------------------------------------------------------- writers

TABLES = (
    ("protocols", Protocol.__table__, "protocols"),
    ("protocol_events", ProtocolEvent.__table__, "events"),
    ("calls", CallLog.__table__, "calls"),
    ("notification_outbox", OutboxMessage.__table__, "outbox"),
)


def _columns(table: Any, sample: dict[str, Any]) -> list[str]:
    return [c.name for c in table.columns if c.name in sample]


def _sqlite_converters(table: Any, cols: list[str]) -> list[Any]:
    """Per column, how SQLAlchemy's SQLite types store a value: UTC date-times as naive
    text with microseconds, dates in ISO form, the rest as they are."""

    def utc_text(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat(" ", "microseconds")[:26]

    def date_text(value: date | None) -> str | None:
        return None if value is None else value.isoformat()

    out = []
    for name in cols:
        column_type = table.columns[name].type
        if isinstance(column_type, UtcDateTime):
            out.append(utc_text)
        elif isinstance(column_type, Date):
            out.append(date_text)
        else:
            out.append(None)
    return out


def _write_sqlite(path: str, gen: Generator, stats: Stats) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")  # a generator: the run is repeatable
        first_id = (db.execute("SELECT coalesce(max(id), 0) FROM protocols").fetchone()[0]) + 1
        for chunk in gen.chunks(first_id):
            db.execute("BEGIN")
            for name, table, attr in TABLES:
                rows: Sequence[dict[str, Any]] = getattr(chunk, attr)
                if not rows:
                    continue
                cols = _columns(table, rows[0])
                sql = (
                    f"INSERT INTO {name} ({', '.join(cols)}) "
                    f"VALUES ({', '.join('?' for _ in cols)})"
                )
                conv = _sqlite_converters(table, cols)
                db.executemany(
                    sql,
                    (
                        [f(r[c]) if f else r[c] for c, f in zip(cols, conv, strict=True)]
                        for r in rows
                    ),
                )
                setattr(stats, attr, getattr(stats, attr) + len(rows))
            db.execute("COMMIT")
        _bump_counters_sqlite(db, gen.counters())
        db.execute("ANALYZE")
    finally:
        db.close()


def _bump_counters_sqlite(db: sqlite3.Connection, counters: list[tuple[str, int]]) -> None:
    table = ProtocolCounter.__tablename__
    db.execute("BEGIN")
    db.executemany(
        f"INSERT INTO {table} (key, value) VALUES (?, ?) "
        f"ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        counters,
    )
    db.execute("COMMIT")


async def _write_postgres(dsn: str, gen: Generator, stats: Stats) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        first_id = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM protocols")) + 1
        for chunk in gen.chunks(first_id):
            async with conn.transaction():
                for name, table, attr in TABLES:
                    rows: Sequence[dict[str, Any]] = getattr(chunk, attr)
                    if not rows:
                        continue
                    cols = _columns(table, rows[0])
                    await conn.copy_records_to_table(
                        name, records=[tuple(r[c] for c in cols) for r in rows], columns=cols
                    )
                    setattr(stats, attr, getattr(stats, attr) + len(rows))
        await conn.executemany(
            f"INSERT INTO {ProtocolCounter.__tablename__} (key, value) VALUES ($1, $2) "
            "ON CONFLICT (key) DO UPDATE SET value = greatest("
            f"{ProtocolCounter.__tablename__}.value, excluded.value)",
            gen.counters(),
        )
        # Serial columns: move them past the explicit ids.
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('protocols', 'id'), "
            "(SELECT max(id) FROM protocols))"
        )
        # What autovacuum does to a table in service: statistics, and the visibility
        # map that lets counts read an index alone (index-only scans).
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def generate(
    database_url: str,
    protocols: int,
    *,
    days: int = 800,
    seed: int = 1,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> Stats:
    """Add ``protocols`` protocols (with their timelines, calls and outbox) to a
    migrated database."""
    settings = settings or Settings.load(env={}, overrides={"database_url": database_url})
    now = now or datetime.now(UTC)
    gen = Generator(settings, protocols, days, seed, now)
    stats = Stats(heavy_phones=gen.heavy)
    started = time.monotonic()
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database, "an SQLite file is needed"
        _write_sqlite(url.database, gen, stats)
    else:
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        asyncio.run(_write_postgres(dsn, gen, stats))
    stats.protocols = protocols
    stats.seconds = time.monotonic() - started
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url", help="a migrated database (sac-ivr db upgrade)")
    parser.add_argument("--protocols", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=800)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    stats = generate(args.database_url, args.protocols, days=args.days, seed=args.seed)
    print(
        f"added {stats.protocols} protocols, {stats.events} timeline entries, {stats.calls} "
        f"calls, {stats.outbox} outbox messages over {args.days} days in {stats.seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
