"""The reported bug: with AMI enabled on SQLite, the ``protocol`` route waited ~15 s
and failed with "database is locked".

The call log writer stores AMI events in transactions that take SQLite's write lock
at BEGIN (IMMEDIATE) and hold it across awaits (aiosqlite: every statement is a
round trip through the event loop). When a call needed its number at that moment,
the issuer used to wait for the lock INSIDE sqlite (busy_timeout, 15 s) on the
event loop: the writer could never finish, the issuer gave up after 15 s. These
tests recreate that exact interleaving with the real service (runner, AMI starter,
call log writer) in this process, a fake Asterisk Manager and fake FastAGI calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import event, select

from sac_ivr.calls import protocol_links
from sac_ivr.calls.calllog import HANDLED_EVENTS
from sac_ivr.calls.tables import CallLog
from sac_ivr.calls.writer import CallLogWriter
from sac_ivr.db.engine import (
    create_engine,
    create_read_engine,
    make_read_sessionmaker,
    make_sessionmaker,
)
from sac_ivr.protocols.tables import Protocol
from sac_ivr.runner import RunningService, start_service
from tests.conftest import make_settings
from tests.fakeasterisk.agi import fake_call
from tests.fakeasterisk.ami import FakeAmi, load_trace

LINKEDID = "1795000000.7"


def _event(name: str, uniqueid: str = LINKEDID, **fields: str) -> dict[str, str]:
    return {
        "Event": name,
        "Channel": "PJSIP/trunk-00000007",
        "Uniqueid": uniqueid,
        "Linkedid": LINKEDID,
        "CallerIDNum": "11987654321",
        "CallerIDName": "Maria Silva",
        "Timestamp": f"{time.time():.6f}",
        **fields,
    }


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Poll ``check`` until it is true (TimeoutError after ``timeout`` seconds)."""
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def logged_calls(running: RunningService) -> dict[str, CallLog]:
    """linkedid -> call log row, for the calls that have ended."""
    async with running.core.sessionmaker() as session:
        rows = (await session.scalars(select(CallLog))).all()
    return {r.linkedid: r for r in rows if r.ended_at is not None}


async def hang_up_and_read_back(running: RunningService, fake: FakeAmi, number: str) -> CallLog:
    """The call's protocol VarSet and its hangup, then its call log row once stored."""
    await fake.push(_event("VarSet", Variable="SAC_PROTOCOL", Value=number))
    await fake.push(_event("Hangup", Cause="16", **{"Cause-txt": "Normal Clearing"}))
    rows: dict[str, CallLog] = {}

    async def ended() -> bool:
        rows.update(await logged_calls(running))
        return LINKEDID in rows

    await until(ended, 5)
    return rows[LINKEDID]


class HeldWriter:
    """Makes the call log writer keep its write transaction (and SQLite's write lock)
    open until :meth:`release`, the way a busy event loop stretches it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.holding = asyncio.Event()
        self._release = asyncio.Event()
        original = protocol_links.write_links

        async def held(session: Any, writes: protocol_links.LinkWrites) -> None:
            await original(session, writes)
            if not self._release.is_set():
                self.holding.set()
                await self._release.wait()

        monkeypatch.setattr(protocol_links, "write_links", held)

    def release(self) -> None:
        self._release.set()


@pytest.fixture
async def service(sqlite_url: str) -> AsyncIterator[tuple[RunningService, FakeAmi]]:
    fake = await FakeAmi().start()
    settings = make_settings(
        sqlite_url,
        ami_enabled=True,
        ami_port=fake.port,
        ami_username=fake.username,
        ami_secret=fake.secret,
        ami_reconcile_interval=0,
    )
    running = await start_service(settings, migrate=False)
    await fake.wait_logins(1)
    await fake.wait_action("QueueStatus")  # the connect-time sync is over
    yield running, fake
    await running.stop(drain_seconds=1.0)
    await fake.close()


async def test_call_gets_its_number_while_the_call_log_holds_the_write_lock(
    service: tuple[RunningService, FakeAmi], monkeypatch: pytest.MonkeyPatch
) -> None:
    running, fake = service
    held = HeldWriter(monkeypatch)
    await fake.push(_event("Newchannel", ChannelState="4", Exten="08001234567"))
    await asyncio.wait_for(held.holding.wait(), 5)  # the writer is inside its transaction

    call = asyncio.create_task(
        fake_call("127.0.0.1", running.agi_port, args=(LINKEDID,), uniqueid=LINKEDID)
    )
    ticks = 0
    for _ in range(30):  # the loop keeps turning while the call waits for the lock
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 30
    # still waiting for the lock (not failed, not committed around the held lock)
    assert not call.done(), call
    held.release()

    result = await asyncio.wait_for(call, 10)
    assert result.variables.get("SAC_RESULT") == "OK", result.commands
    number = result.variables["SAC_PROTOCOL"]
    assert result.digits_between() == [number]

    # the call log got both: its events, and the protocol tied to the call
    stored = await hang_up_and_read_back(running, fake, number)
    assert stored.protocol_number == number
    assert stored.hangup_cause == 16


async def test_many_calls_and_a_stream_of_ami_events_on_sqlite(
    service: tuple[RunningService, FakeAmi],
) -> None:
    """60 calls at once, each with its AMI events (a dozen VarSets, queue, hangup)
    flowing into the call log meanwhile: every call gets a number, every call is
    logged with it."""
    running, fake = service

    async def one(i: int) -> str:
        uid = f"1795000100.{i}"

        def ev(name: str, **fields: str) -> dict[str, str]:
            return {**_event(name, uid, **fields), "Linkedid": uid}

        await fake.push(
            ev("Newchannel", ChannelState="4", Exten="s"),
            ev("Newstate", ChannelState="6"),
            *(ev("VarSet", Variable=f"SAC_X{j}", Value="1") for j in range(12)),
        )
        result = await fake_call("127.0.0.1", running.agi_port, args=(uid,), uniqueid=uid)
        assert result.variables.get("SAC_RESULT") == "OK", (i, result.commands[:4])
        number = result.variables["SAC_PROTOCOL"]
        await fake.push(
            ev("VarSet", Variable="SAC_PROTOCOL", Value=number),
            ev("QueueCallerJoin", Queue="sac-agents"),
            ev("Hangup", Cause="16", **{"Cause-txt": "Normal Clearing"}),
        )
        return number

    numbers = await asyncio.gather(*(one(i) for i in range(60)))
    assert len(set(numbers)) == 60

    rows: dict[str, CallLog] = {}

    async def all_ended() -> bool:
        rows.update(await logged_calls(running))
        return len(rows) == 60

    await until(all_ended, 10)
    assert sorted(r.protocol_number or "" for r in rows.values()) == sorted(numbers)


class PausedBetweenReadAndWrite:
    """Stops the call log writer after its read phase (rows merged, protocol writes
    planned), before its write transaction, until :meth:`release`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paused = asyncio.Event()
        self._release = asyncio.Event()
        original = protocol_links.plan_links

        async def paused(session: Any, rows: Any) -> protocol_links.LinkWrites:
            writes = await original(session, rows)
            if not self._release.is_set():
                self.paused.set()
                await self._release.wait()
            return writes

        monkeypatch.setattr(protocol_links, "plan_links", paused)

    def release(self) -> None:
        self._release.set()

    @property
    def released(self) -> bool:
        return self._release.is_set()


async def test_the_writer_does_not_hold_the_write_lock_while_it_reads(
    service: tuple[RunningService, FakeAmi], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call gets its number (the issuer's INSERT commits) while the writer is
    stopped after its reads: its reads take no write lock. Before the split the
    reads ran inside the write transaction and the call waited for them."""
    running, fake = service
    paused = PausedBetweenReadAndWrite(monkeypatch)
    await fake.push(_event("Newchannel", ChannelState="4", Exten="08001234567"))
    await asyncio.wait_for(paused.paused.wait(), 5)

    result = await asyncio.wait_for(
        fake_call("127.0.0.1", running.agi_port, args=(LINKEDID,), uniqueid=LINKEDID), 5
    )
    assert result.variables.get("SAC_RESULT") == "OK", result.commands
    number = result.variables["SAC_PROTOCOL"]
    assert not paused.released  # the writer was stopped all along
    paused.release()

    assert (await hang_up_and_read_back(running, fake, number)).protocol_number == number


async def test_the_write_transaction_only_inserts_and_updates(sqlite_url: str) -> None:
    """Every statement of the writer on the writing engine is BEGIN, INSERT or
    UPDATE: its SELECTs go to the read-only engine."""
    engine = create_engine(sqlite_url)
    read_engine = create_read_engine(engine)
    written: list[str] = []
    read: list[str] = []

    def recorder(into: list[str]) -> Any:
        def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            into.append(statement.split(None, 1)[0].upper())

        return record

    event.listen(engine.sync_engine, "before_cursor_execute", recorder(written))
    event.listen(read_engine.sync_engine, "before_cursor_execute", recorder(read))
    writer = CallLogWriter(make_sessionmaker(engine), reader=make_read_sessionmaker(read_engine))
    await writer.start()
    try:
        events = load_trace("queue_answered.ami")
        async with make_sessionmaker(engine)() as session, session.begin():
            session.add(
                Protocol(
                    number="202411220000181",
                    issue_date=date(2024, 11, 22),
                    caller_number="11987654321",
                    uniqueid="1732280000.1",
                    status="open",
                )
            )
        written.clear()
        for half in (events[: len(events) // 2], events[len(events) // 2 :]):
            for item in half:
                writer.feed(item)
            await writer.flush()
    finally:
        await writer.close()
        await read_engine.dispose()
        await engine.dispose()
    assert writer.events_stored == sum(e["Event"] in HANDLED_EVENTS for e in events)
    assert "SELECT" in read
    assert set(written) <= {"BEGIN", "INSERT", "UPDATE"}, written
    assert {"INSERT", "UPDATE"} <= set(written)  # the row, the protocol, its timeline
