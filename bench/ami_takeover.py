"""AMI takeover benchmark: how long after a ``kill -9`` of the instance writing an
Asterisk's call log does another instance write that Asterisk's events?

Two real ``sac-ivr serve`` processes share a fresh PostgreSQL database (created on
the server of SAC_IVR_TEST_PG_URL, default 127.0.0.1:5432, dropped at the end) and
follow one Asterisk Manager (the tests' fake, tests/fakeasterisk/ami.py). Each run:
find the follower (``ami_followers.holder``), wait a random part of the retry
interval, kill its whole process group with SIGKILL, push the first event of a new
call at once, and time until that call's row is in the database. The killed
instance is started again (it becomes the standby) before the next run.

The baseline, printed beside it: ``ami_follow_retry``, the interval at which a
standby tries the lock (the least a takeover can take on average is about half of
it, plus the time PostgreSQL takes to see the killed session gone).

    python -m bench.ami_takeover [--runs 7] [--retry 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy import select  # noqa: E402

from sac_ivr.calls.tables import AmiFollower, CallLog  # noqa: E402
from sac_ivr.db.engine import create_engine, make_sessionmaker  # noqa: E402
from sac_ivr.db.migrate import upgrade  # noqa: E402
from tests.fakeasterisk.ami import FakeAmi  # noqa: E402
from tests.serve_proc import ServeProcess, pid_alive  # noqa: E402

ADMIN_URL = os.environ.get(
    "SAC_IVR_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def newchannel(linkedid: str) -> dict[str, str]:
    return {
        "Event": "Newchannel",
        "Privilege": "call,all",
        "Timestamp": f"{time.time():.6f}",
        "Channel": f"PJSIP/trunk-{linkedid}",
        "ChannelState": "4",
        "CallerIDNum": "11987654321",
        "Exten": "08001234567",
        "Uniqueid": linkedid,
        "Linkedid": linkedid,
    }


async def main(runs: int, retry: float) -> None:
    name = f"sac_ivr_bench_takeover_{uuid.uuid4().hex[:8]}"
    await admin(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rpartition("/")[0] + f"/{name}"
    await asyncio.to_thread(upgrade, url)
    fake = await FakeAmi().start()
    engine = create_engine(url)
    sessionmaker = make_sessionmaker(engine)
    env = {
        "SAC_IVR_DATABASE_URL": url,
        "SAC_IVR_AMI_ENABLED": "true",
        "SAC_IVR_AMI_PORT": str(fake.port),
        "SAC_IVR_AMI_SECRET": fake.secret,
        "SAC_IVR_AMI_FOLLOW_RETRY": str(retry),
        "SAC_IVR_AMI_ALIVE_INTERVAL": "0.5",
        "SAC_IVR_AMI_RECONCILE_INTERVAL": "0",
        "SAC_IVR_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }
    work = Path(tempfile.mkdtemp(prefix="sac-ivr-bench-takeover-"))
    procs = [ServeProcess(work / n, env) for n in "ab"]

    async def holder() -> int | None:
        async with sessionmaker() as session:
            text = await session.scalar(select(AmiFollower.holder))
        return int(text.rsplit(":", 1)[1]) if text else None

    async def wait(predicate, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not await predicate():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out: {what}")
            await asyncio.sleep(0.02)

    times: list[float] = []
    try:
        for proc in procs:
            await asyncio.to_thread(proc.start)
        for n in range(runs):
            await wait(lambda: _logged_in(fake, procs), "both instances on AMI")

            async def followed() -> bool:
                pid = await holder()
                return any(p.children().get("web") == pid for p in procs)

            await wait(followed, "a follower")
            # the standby settled; then a random phase against its retry loop, so that
            # the runs sample every moment of it
            await asyncio.sleep(1.0 + random.uniform(0, retry))
            pid = await holder()
            follower = next(p for p in procs if p.children().get("web") == pid)
            children = follower.children()
            linkedid = f"{int(time.time())}.{n + 1}"
            os.killpg(follower.pid, signal.SIGKILL)
            if os.environ.get("BENCH_LOG_LEVEL"):
                print(f"killed at {time.time():.3f} ({follower.log_path})")
            start = time.perf_counter()
            await fake.push(newchannel(linkedid))

            async def written(lid: str = linkedid) -> bool:
                async with sessionmaker() as session:
                    found = await session.scalar(select(CallLog.id).where(CallLog.linkedid == lid))
                return found is not None

            await wait(written, "the other instance writes")
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            print(f"run {n + 1}: first event written {elapsed * 1000:.0f} ms after kill -9")
            deadline = time.monotonic() + 15
            while any(pid_alive(p) for p in children.values()):
                if time.monotonic() > deadline:
                    raise SystemExit("the killed instance did not die")
                await asyncio.sleep(0.05)
            follower.proc = None
            await asyncio.to_thread(follower.start)
    finally:
        for proc in procs:
            proc.kill()
        await engine.dispose()
        await fake.close()
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    ordered = sorted(times)
    print()
    print(f"takeover after kill -9 ({runs} runs, PostgreSQL advisory lock):")
    print(f"  p50 {statistics.median(ordered) * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")
    print(f"  baseline: ami_follow_retry (lock retry interval) = {retry * 1000:.0f} ms")


async def _logged_in(fake: FakeAmi, procs: list[ServeProcess]) -> bool:
    return fake.clients >= len(procs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--retry", type=float, default=1.0, help="ami_follow_retry (s)")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.retry))
