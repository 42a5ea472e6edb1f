"""Uniqueness and durability of protocol numbers: concurrency, midnight, restarts,
several processes on one database, and a database that goes away."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sac_ivr.db.engine import create_engine, make_sessionmaker
from sac_ivr.protocols.issuer import CallInfo, ProtocolIssueError, ProtocolIssuer
from sac_ivr.protocols.numbering import DateSequenceCheck, GlobalSequence
from sac_ivr.protocols.tables import Protocol
from tests.conftest import make_settings
from tests.fakeasterisk.agi import fake_call
from tests.serve_proc import ServeProcess

SAO_PAULO = make_settings("sqlite+aiosqlite://").tz


async def test_numbers_restart_at_local_midnight_not_utc(db_url: str) -> None:
    # 23:59:59.9 in São Paulo is 02:59:59.9 UTC of the next day.
    times = iter(
        [
            datetime(2026, 11, 23, 2, 59, 59, 900000, tzinfo=UTC),
            datetime(2026, 11, 23, 2, 59, 59, 950000, tzinfo=UTC),
            datetime(2026, 11, 23, 3, 0, 0, 10000, tzinfo=UTC),
        ]
    )
    engine = create_engine(db_url)
    issuer = ProtocolIssuer(engine, DateSequenceCheck(), SAO_PAULO, clock=lambda: next(times))
    try:
        numbers = [(await issuer.issue(CallInfo())).number for _ in range(3)]
    finally:
        await issuer.close()
        await engine.dispose()
    assert [n[:14] for n in numbers] == [
        "20261122000001",
        "20261122000002",
        "20261123000001",
    ]


async def test_one_batch_across_midnight_keeps_both_days_right(db_url: str) -> None:
    midnight = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    moments = iter([midnight - timedelta(milliseconds=5), midnight, midnight, midnight])
    engine = create_engine(db_url)
    issuer = ProtocolIssuer(engine, DateSequenceCheck(), SAO_PAULO, clock=lambda: next(moments))
    try:
        issued = await asyncio.gather(*(issuer.issue(CallInfo()) for _ in range(4)))
    finally:
        await issuer.close()
        await engine.dispose()
    assert sorted(p.number[:14] for p in issued) == [
        "20261122000001",
        "20261123000001",
        "20261123000002",
        "20261123000003",
    ]


async def test_restart_continues_the_sequence(db_url: str) -> None:
    seen: list[str] = []
    for _ in range(3):  # three "process lifetimes" on the same database
        engine = create_engine(db_url)
        issuer = ProtocolIssuer(engine, GlobalSequence(width=6), SAO_PAULO)
        seen += [
            p.number for p in await asyncio.gather(*(issuer.issue(CallInfo()) for _ in range(5)))
        ]
        await issuer.close()
        await engine.dispose()
    assert sorted(seen) == [f"{i:06d}" for i in range(1, 16)]


async def test_many_issuers_on_one_database_never_collide(db_url: str) -> None:
    engines = [create_engine(db_url) for _ in range(4)]
    issuers = [ProtocolIssuer(e, DateSequenceCheck(), SAO_PAULO) for e in engines]
    try:
        issued = await asyncio.gather(
            *(issuers[i % 4].issue(CallInfo(uniqueid=str(i))) for i in range(400))
        )
    finally:
        for issuer, engine in zip(issuers, engines, strict=True):
            await issuer.close()
            await engine.dispose()
    numbers = [p.number for p in issued]
    assert len(set(numbers)) == 400
    assert sorted(int(n[8:14]) for n in numbers) == list(range(1, 401))


def _serve(db_url: str, tmp_path: Path, name: str) -> ServeProcess:
    env = {"SAC_IVR_DATABASE_URL": db_url, "SAC_IVR_LOG_LEVEL": "WARNING"}
    return ServeProcess(tmp_path / name, env=env).start()


async def test_two_server_processes_share_one_database(db_url: str, tmp_path: Path) -> None:
    servers = [_serve(db_url, tmp_path, f"server{i}") for i in range(2)]
    try:
        results = await asyncio.gather(
            *(
                fake_call("127.0.0.1", servers[i % 2].agi_port, uniqueid=f"mp.{i}")
                for i in range(120)
            )
        )
    finally:
        codes = [server.stop(timeout=15) for server in servers]
    assert codes == [0, 0]
    numbers = [r.variables["SAC_PROTOCOL"] for r in results]
    assert len(set(numbers)) == 120
    for r in results:
        assert r.digits_between() == [r.variables["SAC_PROTOCOL"]]
    engine = create_engine(db_url)
    async with make_sessionmaker(engine)() as session:
        stored = set((await session.scalars(select(Protocol.number))).all())
    await engine.dispose()
    assert stored == set(numbers)


async def test_database_gone_caller_goes_on_and_service_recovers(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sac_ivr.runner import start_service

    running = await start_service(make_settings(sqlite_url), migrate=False)
    try:
        ok = await fake_call("127.0.0.1", running.agi_port)
        assert ok.variables["SAC_RESULT"] == "OK"
        # Take the database away under the running service.
        db_file = Path(sqlite_url.split("///", 1)[1])
        await running.core.engine.dispose()
        running.core.issuer.dispose_connections()
        moved = tmp_path / "moved"
        moved.mkdir()
        for f in tmp_path.glob("sac.sqlite3*"):
            shutil.move(f, moved / f.name)
        db_file.mkdir()  # a directory where the file was: every open fails
        gone = await fake_call("127.0.0.1", running.agi_port)
        assert gone.variables == {"SAC_RESULT": "ERROR"}
        assert gone.played == []  # the dialplan plays the fallback, not us
        assert "no protocol number issued" in caplog.text
        assert "Traceback" not in caplog.text
        # The database comes back: calls get numbers again, the sequence goes on.
        await running.core.engine.dispose()
        running.core.issuer.dispose_connections()
        db_file.rmdir()
        for f in moved.iterdir():
            shutil.move(f, tmp_path / f.name)
        back = await fake_call("127.0.0.1", running.agi_port)
        assert back.variables["SAC_RESULT"] == "OK"
        assert (
            int(back.variables["SAC_PROTOCOL"][8:14]) == int(ok.variables["SAC_PROTOCOL"][8:14]) + 1
        )
    finally:
        await running.stop(drain_seconds=1.0)


async def test_issue_error_reaches_every_waiting_caller(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}")  # a directory: cannot open
    issuer = ProtocolIssuer(engine, DateSequenceCheck(), SAO_PAULO)
    try:
        outcomes = await asyncio.gather(
            *(issuer.issue(CallInfo()) for _ in range(5)), return_exceptions=True
        )
    finally:
        await issuer.close()
        await engine.dispose()
    assert all(isinstance(o, ProtocolIssueError) for o in outcomes)


async def test_stored_row_has_every_call_fact(db_url: str) -> None:
    engine = create_engine(db_url)
    issuer = ProtocolIssuer(engine, DateSequenceCheck(), SAO_PAULO)
    call = CallInfo(
        caller_number="021 11 98765-4321",
        caller_name="Joana",
        called_number="08007654321",
        uniqueid="1732.5",
        linkedid="1732.1",
        channel="PJSIP/op-0001",
    )
    try:
        issued = await issuer.issue(call)
    finally:
        await issuer.close()
    async with make_sessionmaker(engine)() as session:
        row = await session.scalar(select(Protocol).where(Protocol.number == issued.number))
        count = await session.scalar(select(func.count(Protocol.id)))
    await engine.dispose()
    assert count == 1
    assert row.caller_number == "021 11 98765-4321"
    assert row.caller_e164 == "+5511987654321"
    assert (row.called_number, row.uniqueid, row.linkedid, row.channel) == (
        "08007654321",
        "1732.5",
        "1732.1",
        "PJSIP/op-0001",
    )
    assert row.issued_at.tzinfo is not None and row.issued_at.utcoffset() == timedelta(0)
    assert row.issue_date == row.issued_at.astimezone(SAO_PAULO).date()


async def test_waiting_for_the_sqlite_lock_never_blocks_the_loop(sqlite_url: str) -> None:
    """Another transaction of this process holds the write lock across an await: the
    issuer must wait without blocking the loop (else neither could ever finish)."""
    from sqlalchemy import text

    from sac_ivr.runner import start_service

    running = await start_service(make_settings(sqlite_url), migrate=False)
    try:
        async with running.core.sessionmaker() as session, session.begin():
            await session.execute(text("UPDATE protocol_counters SET value = value"))
            call = asyncio.create_task(fake_call("127.0.0.1", running.agi_port))
            ticks = 0
            for _ in range(20):  # the loop keeps running while the call waits
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks == 20 and not call.done()
        result = await call  # lock released: the call gets its number
        assert result.variables["SAC_RESULT"] == "OK"
        assert result.digits_between() == [result.variables["SAC_PROTOCOL"]]
    finally:
        await running.stop(drain_seconds=1.0)
