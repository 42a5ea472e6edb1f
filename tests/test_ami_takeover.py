"""Real ``sac-ivr serve`` processes following fake Asterisk Managers
(tests/fakeasterisk/ami.py).

Two of them on one PostgreSQL database follow one Asterisk; the one writing the call
log is killed with SIGKILL (its whole process group) in the middle of calls, or
frozen (SIGSTOP). The other takes over (its wait is bounded, not timed), and every
call ends with exactly one row: calls whose hangup came while nobody wrote end at
their hangup (the standby heard it and replays it); a call whose hangup no instance
heard ends within the documented window (``ended_at`` <= real end <= ``ended_by``).
And one process following two servers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from sac_ivr.calls.schemas import call_view
from sac_ivr.calls.tables import AmiFollower, CallLog
from sac_ivr.db.engine import create_engine, make_sessionmaker
from tests.conftest import _pg_execute, new_database
from tests.fakeasterisk.ami import FakeAmi, wait_until
from tests.serve_proc import ServeProcess, pid_alive


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    url, name = new_database("postgres", tmp_path)
    yield url
    asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Calls:
    """Calls on the fake Asterisk: the events it sends and the channels it lists."""

    def __init__(self, fake: FakeAmi) -> None:
        self.fake = fake
        self.ended: dict[str, float] = {}  # linkedid -> real end (epoch)
        self.last_event: dict[str, float] = {}  # linkedid -> its last event's Timestamp
        self._n = 0

    def _channel(self, linkedid: str) -> dict[str, str]:
        return {
            "Channel": f"PJSIP/trunk-{linkedid}",
            "Uniqueid": linkedid,
            "Linkedid": linkedid,
            "CallerIDNum": "11987654321",
            "Application": "Playback",
            "Duration": "00:00:01",
        }

    def _event(self, name: str, linkedid: str, **fields: str) -> dict[str, str]:
        self.last_event[linkedid] = time.time()
        return {
            "Event": name,
            "Privilege": "call,all",
            "Timestamp": f"{self.last_event[linkedid]:.6f}",
            "Channel": f"PJSIP/trunk-{linkedid}",
            "CallerIDNum": "11987654321",
            "Uniqueid": linkedid,
            "Linkedid": linkedid,
            **fields,
        }

    async def start(self) -> str:
        self._n += 1
        linkedid = f"{int(time.time())}.{self._n}"
        self.fake.channels.append(self._channel(linkedid))
        await self.fake.push(
            self._event("Newchannel", linkedid, ChannelState="4", Exten="08001234567"),
            self._event("Newstate", linkedid, ChannelState="6", ChannelStateDesc="Up"),
        )
        return linkedid

    def _forget(self, linkedid: str) -> None:
        self.fake.channels = [c for c in self.fake.channels if c["Linkedid"] != linkedid]
        self.ended[linkedid] = time.time()

    async def hang_up(self, linkedid: str) -> None:
        self._forget(linkedid)
        event = self._event("Hangup", linkedid, Cause="16", **{"Cause-txt": "Normal Clearing"})
        event["Timestamp"] = f"{self.ended[linkedid]:.6f}"
        await self.fake.push(event)

    def vanish(self, linkedid: str) -> None:
        """The call ends, and its Hangup reaches no one (no event is sent)."""
        self._forget(linkedid)


def serve_env(url: str, fake: FakeAmi) -> dict[str, str]:
    return {
        "SAC_IVR_DATABASE_URL": url,
        "SAC_IVR_AMI_ENABLED": "true",
        "SAC_IVR_AMI_PORT": str(fake.port),
        "SAC_IVR_AMI_SECRET": fake.secret,
        "SAC_IVR_AMI_FOLLOW_RETRY": "0.5",
        "SAC_IVR_AMI_ALIVE_INTERVAL": "0.5",
        "SAC_IVR_AMI_RECONNECT_MAX": "1",
        "SAC_IVR_AMI_RECONCILE_INTERVAL": "0",
    }


async def holder_pid(sessionmaker: Any) -> int | None:
    async with sessionmaker() as session:
        holder = await session.scalar(select(AmiFollower.holder))
    return int(holder.rsplit(":", 1)[1]) if holder else None


async def start_both(
    procs: list[ServeProcess], fake: FakeAmi, sessionmaker: Any
) -> tuple[ServeProcess, ServeProcess]:
    """Start both instances; once one follows the server (it records that it is
    alive once it has reconciled), return (the follower, the other)."""
    for proc in procs:
        await asyncio.to_thread(proc.start)
    await fake.wait_logins(2, timeout=30)
    deadline = time.monotonic() + 30
    while (pid := await holder_pid(sessionmaker)) is None:
        assert time.monotonic() < deadline, "no instance follows the server"
        await asyncio.sleep(0.1)
    follower = next(p for p in procs if p.children().get("web") == pid)
    return follower, next(p for p in procs if p is not follower)


async def test_kill_9_of_the_follower_mid_call_leaves_every_call_one_right_row(
    tmp_path: Path, postgres_url: str
) -> None:
    fake = await FakeAmi().start()
    engine = create_engine(postgres_url)
    sessionmaker = make_sessionmaker(engine)
    procs = [ServeProcess(tmp_path / name, serve_env(postgres_url, fake)) for name in "ab"]
    calls = Calls(fake)
    try:
        follower, standby = await start_both(procs, fake, sessionmaker)

        ends_after_kill = await calls.start()  # hangs up while nobody writes
        vanishes = await calls.start()  # ends while nobody writes; no Hangup at all
        survives = await calls.start()  # ends after the takeover
        ends_before = await calls.start()
        await asyncio.sleep(0.3)
        await calls.hang_up(ends_before)
        await asyncio.sleep(1.0)  # the follower stores them, and records it is alive

        children = follower.children()
        os.killpg(follower.pid, signal.SIGKILL)  # the whole instance, kill -9
        killed_at = time.time()
        await wait_until(lambda: not any(pid_alive(p) for p in children.values()), 15, "the kill")
        await calls.hang_up(ends_after_kill)
        calls.vanish(vanishes)
        during = await calls.start()  # starts and ends while nobody writes
        await asyncio.sleep(0.2)
        await calls.hang_up(during)

        # The standby takes over: it records that it follows now
        new_pid = standby.children()["web"]
        deadline = time.monotonic() + 30
        while await holder_pid(sessionmaker) != new_pid:
            assert time.monotonic() < deadline, f"no takeover:\n{standby.log_text()[-3000:]}"
            await asyncio.sleep(0.1)
        took_over_at = time.time()
        await calls.hang_up(survives)

        # Every call: exactly one row, closed
        linkedids = [ends_before, ends_after_kill, vanishes, survives, during]
        deadline = time.monotonic() + 30
        while True:
            async with sessionmaker() as session:
                rows = {r.linkedid: r for r in (await session.scalars(select(CallLog))).all()}
                count = await session.scalar(select(func.count()).select_from(CallLog))
            if all(lid in rows and rows[lid].ended_at is not None for lid in linkedids):
                break
            assert time.monotonic() < deadline, f"calls left open: {rows}"
            await asyncio.sleep(0.1)
        assert count == len(linkedids) == len(rows)
        assert {r.server for r in rows.values()} == {"default"}
        # Hangups heard: the real end, to the microsecond of the event
        for lid in (ends_before, ends_after_kill, during, survives):
            row = rows[lid]
            assert row.reconciled is False and row.hangup_cause == 16, lid
            assert row.ended_at is not None
            assert abs(row.ended_at.timestamp() - calls.ended[lid]) < 0.001, lid
        # The hangup nobody heard: ended_at <= real end <= ended_by (the window)
        row = rows[vanishes]
        view = call_view(row)
        assert row.reconciled is True and view["ended_by"] is not None
        ended_by = datetime.fromisoformat(view["ended_by"]).timestamp()
        assert row.ended_at is not None
        assert row.ended_at.timestamp() <= calls.ended[vanishes] <= ended_by
        # its start: the last "alive" record of the killed follower, made after the
        # call's last event (the old rule's end) and before the kill
        assert calls.last_event[vanishes] < row.ended_at.timestamp() <= killed_at
        assert ended_by <= took_over_at
        print(f"takeover after kill -9: {took_over_at - killed_at:.2f} s")
        assert "this instance now writes its call log" in standby.log_text()
    finally:
        for proc in procs:
            proc.kill()
        await engine.dispose()
        await fake.close()


async def test_a_frozen_follower_is_replaced_and_writes_nothing_when_it_wakes(
    tmp_path: Path, postgres_url: str
) -> None:
    """SIGSTOP (a stalled machine): PostgreSQL ends the frozen follower's session after
    ami_follow_expiry, the other instance takes over; woken up (SIGCONT), the old one
    finds its lock gone and does not write the events it read meanwhile."""
    fake = await FakeAmi().start()
    engine = create_engine(postgres_url)
    sessionmaker = make_sessionmaker(engine)
    env = {**serve_env(postgres_url, fake), "SAC_IVR_AMI_FOLLOW_EXPIRY": "2"}
    procs = [ServeProcess(tmp_path / name, env) for name in "ab"]
    calls = Calls(fake)
    frozen: ServeProcess | None = None
    try:
        frozen, standby = await start_both(procs, fake, sessionmaker)
        call = await calls.start()
        await asyncio.sleep(1.0)
        os.killpg(frozen.pid, signal.SIGSTOP)
        await calls.hang_up(call)  # the frozen one has it in its socket buffer
        second = await calls.start()
        new_pid = standby.children()["web"]
        deadline = time.monotonic() + 30
        while await holder_pid(sessionmaker) != new_pid:
            assert time.monotonic() < deadline, f"no takeover:\n{standby.log_text()[-3000:]}"
            await asyncio.sleep(0.1)
        offset = frozen.log_size()
        os.killpg(frozen.pid, signal.SIGCONT)
        await frozen.await_log("another instance took over its call log", 30, after=offset)
        await calls.hang_up(second)
        deadline = time.monotonic() + 30
        while True:
            async with sessionmaker() as session:
                rows = {r.linkedid: r for r in (await session.scalars(select(CallLog))).all()}
            if all(lid in rows and rows[lid].ended_at is not None for lid in (call, second)):
                break
            assert time.monotonic() < deadline, f"calls left open: {rows}"
            await asyncio.sleep(0.1)
        for lid in (call, second):
            assert rows[lid].reconciled is False
            assert rows[lid].ended_at is not None
            assert abs(rows[lid].ended_at.timestamp() - calls.ended[lid]) < 0.001
        assert len(rows) == 2
        assert await holder_pid(sessionmaker) == new_pid  # the woken one did not write
        assert "this instance now writes its call log" not in frozen.log_text()[offset:]
    finally:
        if frozen is not None and frozen.proc is not None and frozen.proc.poll() is None:
            os.killpg(frozen.pid, signal.SIGCONT)
        for proc in procs:
            proc.kill()
        await engine.dispose()
        await fake.close()


async def test_one_process_two_servers_the_same_linkedid_is_two_rows_and_queues_retried(
    tmp_path: Path, postgres_url: str
) -> None:
    """A real ``sac-ivr serve`` following two Asterisk servers (ami_servers): the same
    linkedid on both is two rows; one server refusing QueueStatus (app_queue not
    loaded yet) is asked again, on the same link, until it answers."""
    east, west = await FakeAmi().start(), await FakeAmi().start()
    west.refused = {"queuestatus"}
    engine = create_engine(postgres_url)
    sessionmaker = make_sessionmaker(engine)
    env = {
        **serve_env(postgres_url, east),
        "SAC_IVR_AMI_SERVERS": f"east=127.0.0.1:{east.port},west=127.0.0.1:{west.port}",
    }
    proc = ServeProcess(tmp_path / "one", env)
    try:
        await asyncio.to_thread(proc.start)
        await east.wait_logins(1, timeout=30)
        await west.wait_action("QueueStatus", count=3, timeout=30)
        west.refused = set()  # app_queue is loaded now
        asked = len(west.actions_named("QueueStatus"))
        await proc.await_log("AMI server west: queue status not available yet", 5)
        for fake in (east, west):
            calls = Calls(fake)
            linkedid = "1796000000.7"  # the same id on both servers
            fake.channels.append(calls._channel(linkedid))
            await fake.push(
                calls._event("Newchannel", linkedid, ChannelState="4"),
                calls._event("Hangup", linkedid, Cause="16"),
            )
        deadline = time.monotonic() + 30
        while True:
            async with sessionmaker() as session:
                rows = (await session.scalars(select(CallLog).order_by(CallLog.server))).all()
            if len(rows) >= 2 and all(r.ended_at for r in rows):
                break
            assert time.monotonic() < deadline, f"rows: {rows}\n{proc.log_text()[-3000:]}"
            await asyncio.sleep(0.1)
        assert [(r.server, r.linkedid) for r in rows] == [
            ("east", "1796000000.7"),
            ("west", "1796000000.7"),
        ]
        # asked again after the refusals (the retry waits up to 10 s), answered, and
        # then not asked any more: seeded, on the same link
        await west.wait_action("QueueStatus", count=asked + 1, timeout=15)
        await asyncio.sleep(2.0)
        assert len(west.actions_named("QueueStatus")) == asked + 1
        assert west.connections_made == 1 and east.connections_made == 1
    finally:
        proc.kill()
        await engine.dispose()
        await east.close()
        await west.close()
