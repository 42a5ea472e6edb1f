"""Numbers through a database outage, on the issuer: the reserve, the journal, the
replay with the normal issue's hooks, a frozen server, and midnight.

Each test runs its own PostgreSQL cluster (tests/private_postgres.py) that it stops,
freezes (SIGSTOP) and starts again.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sac_ivr.core import Core
from sac_ivr.db.engine import create_engine
from sac_ivr.db.migrate import upgrade_async
from sac_ivr.features import build_core
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.protocols.issuer import CallInfo, IssuedProtocol, ProtocolIssueError, ProtocolIssuer
from sac_ivr.protocols.numbering import DateSequenceCheck
from sac_ivr.protocols.reserve import Journal
from sac_ivr.protocols.tables import Protocol, ProtocolEvent
from sac_ivr.runner import start_service
from tests.conftest import make_settings
from tests.fakeasterisk.agi import fake_call
from tests.private_postgres import PrivatePostgres

MOBILE = "11987654321"
LANDLINE = "1133334444"


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Bounds a wait (not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)


@pytest.fixture
async def pg() -> AsyncIterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    await asyncio.to_thread(cluster.__enter__)
    try:
        await upgrade_async(cluster.url)
        yield cluster
    finally:
        await asyncio.to_thread(cluster.__exit__, None, None, None)


def outage_settings(url: str, journal: Path, **overrides: object):  # type: ignore[no-untyped-def]
    """Settings with a small reserve, and the opening SMS queued (never sent)."""
    values: dict[str, object] = {
        "protocol_journal_path": str(journal),
        "protocol_reserve_block": 40,
        "protocol_db_timeout": 0.5,
        "sms_provider": "webhook",
        "sms_url": "http://127.0.0.1:9/",
        "outbox_worker": False,
    }
    values.update(overrides)
    return make_settings(url, **values)


def journal_rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def in_blocks(path: Path, key: str, sequence: int) -> bool:
    return any(
        first <= sequence <= last
        for first, last in journal_rows(path, f"SELECT first, last FROM blocks WHERE key = '{key}'")
    )


async def counts(core: Core, numbers: list[str]) -> tuple[int, int, int]:
    """Rows of these numbers: protocols, 'opened' events, opening outbox messages."""
    async with core.sessionmaker() as session:
        protocols = await session.scalar(select(func.count()).where(Protocol.number.in_(numbers)))
        events = await session.scalar(
            select(func.count())
            .select_from(ProtocolEvent)
            .join(Protocol)
            .where(Protocol.number.in_(numbers), ProtocolEvent.kind == "opened")
        )
        outbox = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .join(Protocol)
            .where(Protocol.number.in_(numbers), OutboxMessage.kind == "opened")
        )
    return int(protocols or 0), int(events or 0), int(outbox or 0)


async def test_stopped_database_numbers_from_reserve_then_replayed_once(
    pg: PrivatePostgres, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite3"
    core = build_core(outage_settings(pg.url, journal))
    issuer = core.issuer
    try:
        before = await issuer.issue(CallInfo(caller_number=MOBILE, linkedid="up.1"))
        await issuer.refill_reserve()
        key = f"day:{before.issue_date:%Y%m%d}"
        assert journal_rows(journal, "SELECT count(*) FROM blocks")[0][0] >= 1

        await asyncio.to_thread(pg.stop)
        calls = [
            CallInfo(
                caller_number=MOBILE if i % 2 == 0 else LANDLINE,
                linkedid=f"down.{i}",
                uniqueid=f"down.{i}",
                channel=f"PJSIP/trunk-{i:08x}",
            )
            for i in range(20)
        ]
        issued: list[IssuedProtocol] = await asyncio.gather(*(issuer.issue(c) for c in calls))
        numbers = [p.number for p in issued]
        assert issuer.in_outage
        assert len(set(numbers)) == 20 and before.number not in numbers
        for protocol in issued:
            assert in_blocks(journal, key, int(protocol.number[8:14])), protocol.number
        pending = journal_rows(journal, "SELECT number FROM issued WHERE replayed_at IS NULL")
        assert sorted(n for (n,) in pending) == sorted(numbers)
        # The dialplan's retry finds the journaled number while the database is down.
        found = await issuer.find_issued(calls[3])
        assert found is not None and found.number == numbers[3]

        await asyncio.to_thread(pg.start)
        await until(lambda: not issuer.in_outage, 30, "the issuer back on the database")
        assert await counts(core, numbers) == (20, 20, 10)
        assert journal_rows(journal, "SELECT count(*) FROM issued WHERE replayed_at IS NULL") == [
            (0,)
        ]
        async with core.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(Protocol.number, Protocol.linkedid, Protocol.due_at).where(
                        Protocol.number.in_(numbers)
                    )
                )
            ).all()
        assert {row.number: row.linkedid for row in rows} == {
            p.number: p.call.linkedid for p in issued
        }
        assert all(row.due_at is not None for row in rows)  # the lifecycle's filler ran

        # A replay again (entries marked pending once more, as after a crash between
        # the database's commit and the journal's mark) adds nothing.
        with sqlite3.connect(journal) as db:
            db.execute("UPDATE issued SET replayed_at = NULL")
        assert await issuer.replay() == 0
        assert await issuer.replay() == 0
        assert await counts(core, numbers) == (20, 20, 10)

        after = await issuer.issue(CallInfo(caller_number=LANDLINE, linkedid="up.2"))
        assert after.number not in numbers and not issuer.in_outage
        async with core.sessionmaker() as session:
            total = await session.scalar(select(func.count()).select_from(Protocol))
        assert total == 22
    finally:
        await core.close()


async def test_frozen_database_caller_gets_a_reserve_number(
    pg: PrivatePostgres, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite3"
    running = await start_service(outage_settings(pg.url, journal), migrate=False)
    try:
        first = await fake_call("127.0.0.1", running.agi_port, callerid=MOBILE, uniqueid="f.1")
        assert first.variables["SAC_RESULT"] == "OK"
        await running.core.issuer.refill_reserve()

        await asyncio.to_thread(pg.freeze)
        try:
            # SAC_RESULT=OK: the number was issued within the route's bound (4 s).
            call = await fake_call(
                "127.0.0.1", running.agi_port, callerid=MOBILE, uniqueid="f.2", timeout=20
            )
            assert call.variables.get("SAC_RESULT") == "OK", call.commands
            number = call.variables["SAC_PROTOCOL"]
            assert call.digits_between()[0] == number
            assert running.core.issuer.in_outage
            key = f"day:{number[:8]}"
            assert in_blocks(journal, key, int(number[8:14]))
        finally:
            await asyncio.to_thread(pg.thaw)

        await until(lambda: not running.core.issuer.in_outage, 60, "back on the database")
        assert await counts(running.core, [number]) == (1, 1, 1)
        async with running.core.sessionmaker() as session:
            # The abandoned batch was rolled back: one protocol for this call.
            same_call = await session.scalar(select(func.count()).where(Protocol.uniqueid == "f.2"))
        assert same_call == 1
    finally:
        await running.stop(drain_seconds=1.0)


async def test_midnight_during_an_outage_uses_tomorrows_reserve(
    pg: PrivatePostgres, tmp_path: Path
) -> None:
    sao_paulo = make_settings("sqlite+aiosqlite://").tz
    # 23:59:50 in São Paulo is 02:59:50 UTC of the next day.
    now = [datetime(2026, 11, 23, 2, 59, 50, tzinfo=UTC)]
    engine = create_engine(pg.url)
    journal_path = tmp_path / "journal.sqlite3"
    issuer = ProtocolIssuer(engine, DateSequenceCheck(), sao_paulo, clock=lambda: now[0])
    issuer.use_reserve(Journal(journal_path, "test"), block=10, db_timeout=0.5)
    try:
        await issuer.issue(CallInfo(linkedid="a"))  # 20261122000001..
        await issuer.refill_reserve()
        keys = {key for (key,) in journal_rows(journal_path, "SELECT key FROM blocks")}
        assert keys == {"day:20261122", "day:20261123"}

        await asyncio.to_thread(pg.stop)
        late = await issuer.issue(CallInfo(linkedid="b"))
        now[0] += timedelta(seconds=20)  # 00:00:10 on the 23rd, database still down
        early = await asyncio.gather(*(issuer.issue(CallInfo(linkedid=f"c{i}")) for i in range(3)))
        assert issuer.in_outage
        assert late.number[:8] == "20261122"
        assert in_blocks(journal_path, "day:20261122", int(late.number[8:14]))
        assert [p.number[:8] for p in early] == ["20261123"] * 3
        assert len({p.number for p in early}) == 3
        for protocol in early:
            assert in_blocks(journal_path, "day:20261123", int(protocol.number[8:14]))

        await asyncio.to_thread(pg.start)
        await until(lambda: not issuer.in_outage, 30, "back on the database")
        async with engine.connect() as connection:
            stored = set(
                (await connection.execute(select(Protocol.number, Protocol.issue_date))).all()
            )
        for protocol in [late, *early]:
            assert (protocol.number, protocol.issue_date) in stored
    finally:
        await issuer.close()
        await engine.dispose()


async def test_a_restarted_instance_goes_on_after_its_last_journaled_number(
    pg: PrivatePostgres, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite3"
    settings = outage_settings(pg.url, journal)
    core = build_core(settings)
    await core.issuer.issue(CallInfo(linkedid="up"))
    await core.issuer.refill_reserve()
    await asyncio.to_thread(pg.stop)
    first = [await core.issuer.issue(CallInfo(linkedid=f"a{i}")) for i in range(3)]
    # No close(): the process "dies"; a new one opens the same journal.
    again = build_core(settings)
    try:
        second = [await again.issuer.issue(CallInfo(linkedid=f"b{i}")) for i in range(3)]
        numbers = [p.number for p in first + second]
        assert len(set(numbers)) == 6
        sequences = [int(n[8:14]) for n in numbers]
        assert sequences == sorted(sequences)
    finally:
        await again.close()
        await core.close()


async def test_global_sequence_has_one_reserve_for_every_day(
    pg: PrivatePostgres, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite3"
    core = build_core(outage_settings(pg.url, journal, protocol_format="sequence"))
    try:
        first = await core.issuer.issue(CallInfo(linkedid="up"))
        await core.issuer.refill_reserve()
        assert journal_rows(journal, "SELECT key, last - first + 1 FROM blocks") == [("global", 40)]
        await asyncio.to_thread(pg.stop)
        issued = await asyncio.gather(
            *(core.issuer.issue(CallInfo(linkedid=f"d{i}")) for i in range(5))
        )
        numbers = [p.number for p in issued]
        assert len(set(numbers)) == 5 and first.number not in numbers
        assert all(in_blocks(journal, "global", int(n)) for n in numbers)
        await asyncio.to_thread(pg.start)
        await until(lambda: not core.issuer.in_outage, 30, "back on the database")
        assert (await counts(core, numbers))[:2] == (5, 5)
    finally:
        await core.close()


def test_outage_settings_are_checked() -> None:
    from sac_ivr.config import ConfigError

    for bad in (
        {"protocol_reserve_block": -1},
        {"protocol_db_timeout": 10.0},
        {"protocol_journal_path": " "},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            make_settings("sqlite+aiosqlite://", **bad)


async def test_a_reserve_used_up_fails_the_rest_loudly(
    pg: PrivatePostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = tmp_path / "journal.sqlite3"
    core = build_core(outage_settings(pg.url, journal, protocol_reserve_block=4))
    try:
        await core.issuer.issue(CallInfo(linkedid="up"))
        await core.issuer.refill_reserve()
        await asyncio.to_thread(pg.stop)
        results = await asyncio.gather(
            *(core.issuer.issue(CallInfo(linkedid=f"d{i}")) for i in range(6)),
            return_exceptions=True,
        )
        issued = [r for r in results if isinstance(r, IssuedProtocol)]
        failed = [r for r in results if isinstance(r, ProtocolIssueError)]
        assert len(issued) == 4 and len(failed) == 2
        assert len({p.number for p in issued}) == 4
        assert any(
            r.levelname == "CRITICAL" and "reserve exhausted" in r.getMessage()
            for r in caplog.records
        )
        await asyncio.to_thread(pg.start)
        await until(lambda: not core.issuer.in_outage, 30, "back on the database")
        assert (await counts(core, [p.number for p in issued]))[:2] == (4, 4)
    finally:
        await core.close()
