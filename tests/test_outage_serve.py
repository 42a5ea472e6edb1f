"""The issue's scenario: two ``sac-ivr serve`` instances on one PostgreSQL cluster,
fake FastAGI callers in a loop on both; the database stops mid-load; during the
outage one instance is killed (-9) and started again on the same journal; the
database comes back. Every number a caller was given is then in the database once,
its own, with its opening event and, for a mobile, its opening SMS in the outbox.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from sac_ivr.db.engine import create_engine
from sac_ivr.db.migrate import upgrade_async
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.protocols.tables import Protocol, ProtocolEvent
from tests.fakeasterisk.agi import fake_call
from tests.private_postgres import PrivatePostgres
from tests.serve_proc import ServeProcess, pid_alive, raise_fd_limit

MOBILE = "11987654321"
LANDLINE = "1133334444"
LOOPS_PER_INSTANCE = 2
PAUSE_S = 0.05  # between two calls of one loop: keeps the outage within the reserve


@dataclass
class Call:
    instance: str
    phase: str
    uniqueid: str
    callerid: str
    result: str | None
    number: str | None
    heard: list[str]


class Instance:
    def __init__(self, name: str, work_dir: Path, journal: Path, url: str) -> None:
        self.name = name
        self.journal = journal
        self.url = url
        self.serve: ServeProcess | None = None
        self.starts = 0
        self.work_dir = work_dir

    def start(self) -> None:
        self.starts += 1
        env = {
            "SAC_IVR_DATABASE_URL": self.url,
            "SAC_IVR_PROTOCOL_JOURNAL_PATH": str(self.journal),
            "SAC_IVR_PROTOCOL_RESERVE_BLOCK": "600",
            "SAC_IVR_SMS_PROVIDER": "webhook",
            "SAC_IVR_SMS_URL": "http://127.0.0.1:9/",
            "SAC_IVR_OUTBOX_WORKER": "false",
        }
        # A fresh work dir per start (its log's READY line), the same journal. The
        # restart during the outage migrates as any start does: the database not
        # answering does not stop it.
        self.serve = ServeProcess(self.work_dir / f"run{self.starts}", env=env).start()

    def kill9(self) -> None:
        """SIGKILL to the supervisor and its children (one session)."""
        assert self.serve is not None
        pids = [self.serve.pid, *self.serve.children().values()]
        os.killpg(self.serve.pid, signal.SIGKILL)
        self.serve.proc.wait(5)  # type: ignore[union-attr]
        deadline = time.monotonic() + 10
        while any(pid_alive(pid) for pid in pids):
            assert time.monotonic() < deadline, "killed instance still running"
            time.sleep(0.05)

    @property
    def port(self) -> int:
        assert self.serve is not None
        return self.serve.agi_port


async def caller_loop(
    instance: Instance, loop_id: int, phase: list[str], stop: asyncio.Event, calls: list[Call]
) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        uniqueid = f"{instance.name}{loop_id}.{n}"
        callerid = MOBILE if n % 2 else LANDLINE
        current = phase[0]
        try:
            result = await fake_call(
                "127.0.0.1",
                instance.port,
                args=(uniqueid,),
                uniqueid=uniqueid,
                callerid=callerid,
                timeout=10,
            )
        except (OSError, TimeoutError):
            await asyncio.sleep(0.1)  # the instance is down: the next host's job
            continue
        calls.append(
            Call(
                instance=instance.name,
                phase=current,
                uniqueid=uniqueid,
                callerid=callerid,
                result=result.variables.get("SAC_RESULT"),
                number=result.variables.get("SAC_PROTOCOL"),
                heard=result.digits_between(),
            )
        )
        await asyncio.sleep(PAUSE_S)


async def test_two_instances_through_a_database_outage_and_a_kill(tmp_path: Path) -> None:
    raise_fd_limit()
    pg = PrivatePostgres()
    await asyncio.to_thread(pg.__enter__)
    instances = [
        Instance(name, tmp_path / name, tmp_path / name / "journal.sqlite3", pg.url)
        for name in ("a", "b")
    ]
    stop = asyncio.Event()
    loops: list[asyncio.Task[None]] = []
    try:
        await upgrade_async(pg.url)
        for instance in instances:
            await asyncio.to_thread(instance.start)
        # One call each starts the issuer and its reserve.
        for instance in instances:
            warm = await fake_call("127.0.0.1", instance.port, callerid=LANDLINE)
            assert warm.variables["SAC_RESULT"] == "OK"
            assert instance.serve is not None
            await instance.serve.await_log("reserved protocol values", timeout=30)

        phase = ["up"]
        calls: list[Call] = []
        loops = [
            asyncio.create_task(caller_loop(instance, i, phase, stop, calls))
            for instance in instances
            for i in range(LOOPS_PER_INSTANCE)
        ]
        await asyncio.sleep(1.5)
        phase[0] = "outage"
        await asyncio.to_thread(pg.stop)
        await asyncio.sleep(2.0)
        a = instances[0]
        await asyncio.to_thread(a.kill9)
        await asyncio.to_thread(a.start)  # same journal, database still down
        assert a.serve is not None and "starting without migrating" in a.serve.log_text()
        phase[0] = "outage-restarted"
        await asyncio.sleep(2.0)
        phase[0] = "back"
        await asyncio.to_thread(pg.start)
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), 30)

        spoken = [c for c in calls if c.number is not None]
        numbers = [c.number for c in spoken]
        assert len(numbers) == len(set(numbers)), "a number given to two callers"
        for phase_name in ("up", "outage", "outage-restarted", "back"):
            for instance in instances:
                assert any(
                    c.result == "OK" and c.phase == phase_name and c.instance == instance.name
                    for c in calls
                ), (phase_name, instance.name)
        # While the database was down no caller was left without a number (those on
        # the killed instance lost their call, not their number: no ERROR either).
        during = [c for c in calls if c.phase.startswith("outage")]
        assert during and not [c for c in during if c.result == "ERROR"]
        for c in spoken:
            if c.result == "OK":
                assert c.heard and c.heard[0] == c.number

        engine = create_engine(pg.url)
        try:

            async def stored() -> dict[str, tuple[str | None, int, int]]:
                async with engine.connect() as connection:
                    rows = (
                        await connection.execute(
                            select(
                                Protocol.number,
                                Protocol.uniqueid,
                                select(func.count())
                                .where(
                                    ProtocolEvent.protocol_id == Protocol.id,
                                    ProtocolEvent.kind == "opened",
                                )
                                .scalar_subquery(),
                                select(func.count())
                                .where(
                                    OutboxMessage.protocol_id == Protocol.id,
                                    OutboxMessage.kind == "opened",
                                )
                                .scalar_subquery(),
                            ).where(Protocol.number.in_(numbers))
                        )
                    ).all()
                return {row[0]: (row[1], row[2], row[3]) for row in rows}

            deadline = time.monotonic() + 60
            found = await stored()
            while len(found) < len(numbers) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                found = await stored()
            missing = sorted(set(numbers) - set(found))
            assert not missing, f"{len(missing)} spoken number(s) not stored: {missing[:5]}"
            for c in spoken:
                uniqueid, opened, outbox = found[c.number]  # type: ignore[index]
                assert uniqueid == c.uniqueid, c
                assert opened == 1, c
                assert outbox == (1 if c.callerid == MOBILE else 0), c
            async with engine.connect() as connection:
                per_call = (
                    await connection.execute(
                        select(Protocol.uniqueid, func.count())
                        .where(Protocol.uniqueid.in_([c.uniqueid for c in spoken]))
                        .group_by(Protocol.uniqueid)
                        .having(func.count() > 1)
                    )
                ).all()
            assert not per_call, "a call stored twice"
        finally:
            await engine.dispose()
        for instance in instances:
            assert instance.serve is not None
            assert "numbers come from the local reserve" in instance.serve.log_text()
    finally:
        stop.set()
        for task in loops:
            task.cancel()
        for instance in instances:
            if instance.serve is not None:
                await asyncio.to_thread(instance.serve.stop)
        await asyncio.to_thread(pg.__exit__, None, None, None)
