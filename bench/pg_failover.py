"""PostgreSQL failover: how long after the standby's promotion callers get numbers again.

Each run starts a private primary with a synchronous streaming standby on this machine
(tests/private_postgres.py), the real ``sac-ivr serve`` on the multi-host URL, and
CALLERS fake FastAGI callers calling in a closed loop. Once issuing is steady, the
primary is stopped with ``pg_ctl stop -m immediate`` (a crash), GAP seconds pass (the
time a person or a failover tool takes to decide), and the standby is promoted with
``pg_ctl promote`` (which returns once the standby accepts writes).

Measured per run, from ``pg_ctl promote`` returning:

* **resume** — to the first number a caller hears (its first audio, which comes right
  after the number's commit) from the new primary;
* **baseline** — a plain ``asyncpg.connect`` to the new primary and one ``SELECT 1``,
  started at the same moment, under the same load: the least any client can take.

And the **no-number window** callers see: from the last number heard before the
crash to the first one after (the gap and ``pg_ctl promote`` included); every caller
arriving in it goes on without a number. Also counted: the calls that got
``SAC_RESULT=ERROR`` (no number; the dialplan says an attendant will give it; in a run
they all come from the failover: a closed loop of callers retries at once, so this
count says more about the loop than about a SAC), and the numbers lost (heard by a
caller but absent from the new primary; must be 0).

    python -m bench.pg_failover [--runs 5] [--callers 20] [--gap 0.5]
                                [--fault crash|freeze|freeze-in-commit]

``--replication-cost`` measures what synchronous replication costs instead: steady
issuing (calls/s, time to the number) on a primary alone, with an asynchronous
standby and with a synchronous one, side by side in one run (``--runs`` rounds, the
three interleaved; medians).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakeasterisk.agi import fake_call  # noqa: E402
from tests.private_postgres import (  # noqa: E402
    PrivatePostgres,
    multi_host_url,
    primary_with_standby,
)
from tests.serve_proc import ServeProcess  # noqa: E402

CALL_BOUND_S = 10.0
PHASE_TIMEOUT_S = 60.0


@dataclass
class Call:
    started: float
    heard_at: float | None  # the first audio: right after the number's commit
    result: str | None
    number: str | None


@dataclass
class Load:
    port: int
    callers: int
    calls: list[Call] = field(default_factory=list)
    stopping: bool = False

    async def caller(self, index: int) -> None:
        serial = 0
        while not self.stopping:
            serial += 1
            started = time.monotonic()
            try:
                call = await fake_call(
                    "127.0.0.1",
                    self.port,
                    uniqueid=f"bench.{index}.{serial}",
                    timeout=CALL_BOUND_S,
                )
            except TimeoutError:
                self.calls.append(Call(started, None, "HUNG", None))
                continue
            result = call.variables.get("SAC_RESULT")
            heard = call.first_audio_at if result == "OK" else None
            self.calls.append(Call(started, heard, result, call.variables.get("SAC_PROTOCOL")))

    async def until(self, predicate: object, what: str) -> None:
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while not predicate():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not reached in {PHASE_TIMEOUT_S} s")
            await asyncio.sleep(0.01)


@dataclass
class Result:
    resume_s: float
    baseline_s: float
    window_s: float  # last number heard before the crash to the first one after
    errors: int
    ok_total: int
    lost: int


async def baseline(port: int) -> float:
    started = time.monotonic()
    connection = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", timeout=10)
    try:
        await connection.fetchval("SELECT 1")
    finally:
        await connection.close()
    return time.monotonic() - started


async def one_run(
    callers: int, gap: float, fault: str, work_dir: Path, reserve_block: int | None = None
) -> Result:
    async with primary_with_standby() as (primary, standby):
        server: ServeProcess | None = None
        try:
            env = {"SAC_IVR_DATABASE_URL": multi_host_url(primary, standby)}
            env["SAC_IVR_LOG_LEVEL"] = "WARNING"
            if reserve_block is not None:
                env["SAC_IVR_PROTOCOL_RESERVE_BLOCK"] = str(reserve_block)
            server = await asyncio.to_thread(ServeProcess(work_dir, env=env).start)
            load = Load(server.agi_port, callers)
            task = asyncio.gather(*(load.caller(i) for i in range(callers)))
            try:
                await load.until(
                    lambda: sum(c.result == "OK" for c in load.calls) >= 200, "warm-up"
                )
                crash = time.monotonic()
                if fault == "freeze-in-commit":
                    standby.freeze()  # the batch in flight waits for the standby's flush
                    await asyncio.sleep(0.3)
                    primary.freeze()
                    standby.thaw()
                elif fault == "freeze":
                    primary.freeze()
                else:
                    await asyncio.to_thread(primary.stop, "immediate")
                await asyncio.sleep(gap)
                await asyncio.to_thread(standby.promote)
                promoted = time.monotonic()
                baseline_s = await baseline(standby.port)

                def heard_after() -> list[float]:
                    return [c.heard_at for c in load.calls if c.heard_at and c.heard_at > promoted]

                await load.until(lambda: len(heard_after()) > 0, "resume")
                resume_s = min(heard_after()) - promoted
                last_before = max(
                    c.heard_at for c in load.calls if c.heard_at and c.heard_at < crash
                )
                # The longest time no caller heard a number, from the last one before the
                # fault to the first after the promotion (numbers from the outage reserve
                # are heard in between).
                heard = sorted(
                    c.heard_at
                    for c in load.calls
                    if c.heard_at and last_before <= c.heard_at <= min(heard_after())
                )
                window_s = max(later - earlier for earlier, later in itertools.pairwise(heard))
            finally:
                load.stopping = True
                async with asyncio.timeout(CALL_BOUND_S + 5):
                    await task
            errors = sum(c.result != "OK" for c in load.calls)  # the run's, all from the failover
            numbers = [c.number for c in load.calls if c.number]
            connection = await asyncpg.connect(host="127.0.0.1", port=standby.port, user="postgres")
            try:  # numbers from the outage reserve arrive with the journal's replay
                deadline = time.monotonic() + 30
                while True:
                    stored = await connection.fetchval(
                        "SELECT count(*) FROM protocols WHERE number = ANY($1)", numbers
                    )
                    if stored == len(numbers) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
            finally:
                await connection.close()
            return Result(
                resume_s, baseline_s, window_s, errors, len(numbers), len(numbers) - stored
            )
        finally:
            if server is not None:
                await asyncio.to_thread(server.stop, 15)


@dataclass
class Steady:
    rate: float  # calls/s
    p50_ms: float  # to the number
    p99_ms: float
    failed: int

    def line(self, mode: str) -> str:
        name = "primary alone" if mode == "alone" else f"{mode} standby"
        return (
            f"{name:<18} {self.rate:7.0f} calls/s   to the number p50 {self.p50_ms:6.1f} ms"
            f"  p99 {self.p99_ms:6.1f} ms   failed {self.failed}"
        )


async def steady(mode: str, callers: int, seconds: float, work_dir: Path) -> Steady:
    """Calls/s and the time to the number (connect to first audio) of a closed loop of
    callers, on one primary alone, with an asynchronous standby, or a synchronous one."""
    primary = PrivatePostgres(synchronous_standby="standby1" if mode == "sync" else None)
    await asyncio.to_thread(primary.__enter__)
    standby = primary.standby("standby1") if mode != "alone" else None
    server: ServeProcess | None = None
    try:
        servers = [primary]
        if standby is not None:
            await asyncio.to_thread(standby.__enter__)
            servers.append(standby)
        env = {"SAC_IVR_DATABASE_URL": multi_host_url(*servers), "SAC_IVR_LOG_LEVEL": "WARNING"}
        server = await asyncio.to_thread(ServeProcess(work_dir, env=env).start)
        load = Load(server.agi_port, callers)
        task = asyncio.gather(*(load.caller(i) for i in range(callers)))
        try:
            await asyncio.sleep(1.0)  # warm-up: connections, caches
            start = time.monotonic()
            await asyncio.sleep(seconds)
            end = time.monotonic()
        finally:
            load.stopping = True
            async with asyncio.timeout(CALL_BOUND_S + 5):
                await task
        done = [c for c in load.calls if c.heard_at and start <= c.started and c.heard_at <= end]
        waits = sorted((c.heard_at - c.started) * 1000 for c in done if c.heard_at)
        failed = sum(c.result != "OK" for c in load.calls)
        p99 = waits[min(len(waits) - 1, int(0.99 * len(waits)))]
        return Steady(len(done) / (end - start), statistics.median(waits), p99, failed)
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop, 15)
        if standby is not None:
            await asyncio.to_thread(standby.__exit__, None, None, None)
        await asyncio.to_thread(primary.__exit__, None, None, None)


def summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"{name:<34} p50 {statistics.median(ms):8.1f} ms   max {ms[-1]:8.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--callers", type=int, default=20)
    parser.add_argument(
        "--gap", type=float, default=0.5, help="seconds between the crash and the promotion"
    )
    parser.add_argument(
        "--fault",
        choices=("crash", "freeze", "freeze-in-commit"),
        default="crash",
        help="crash: pg_ctl stop -m immediate; freeze: SIGSTOP every process of the "
        "primary (connections stay open, nothing answers: a hung or cut-off host); "
        "freeze-in-commit: the standby frozen first, so that a batch hangs in its "
        "synchronous commit, then the primary",
    )
    parser.add_argument(
        "--replication-cost",
        action="store_true",
        help="instead: steady issuing with no standby, an asynchronous and a "
        "synchronous one, side by side",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="--replication-cost's length")
    parser.add_argument(
        "--reserve-block",
        type=int,
        default=None,
        help="protocol_reserve_block for the service (0: no outage reserve; default: "
        "the service's own)",
    )
    args = parser.parse_args()
    if args.replication_cost:
        modes = ("alone", "async", "sync")
        runs: dict[str, list[Steady]] = {mode: [] for mode in modes}
        with tempfile.TemporaryDirectory(prefix="sac-ivr-bench-failover-") as tmp:
            for round_ in range(args.runs):  # the modes interleaved: same machine noise
                for mode in modes:
                    work_dir = Path(tmp) / f"{mode}{round_}"
                    measured = await steady(mode, args.callers, args.seconds, work_dir)
                    runs[mode].append(measured)
                    print(f"round {round_ + 1}: {measured.line(mode)}", flush=True)
        print(f"\nmedians of {args.runs} rounds, {args.callers} callers in a closed loop")
        for mode in modes:
            median = Steady(
                statistics.median(r.rate for r in runs[mode]),
                statistics.median(r.p50_ms for r in runs[mode]),
                statistics.median(r.p99_ms for r in runs[mode]),
                sum(r.failed for r in runs[mode]),
            )
            print(median.line(mode))
        return
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sac-ivr-bench-failover-") as tmp:
        for run in range(args.runs):
            result = await one_run(
                args.callers, args.gap, args.fault, Path(tmp) / f"run{run}", args.reserve_block
            )
            results.append(result)
            print(
                f"run {run + 1}: resume {result.resume_s * 1000:7.1f} ms  "
                f"baseline {result.baseline_s * 1000:6.1f} ms  "
                f"no-number window {result.window_s * 1000:7.1f} ms  "
                f"calls without a number {result.errors:4d}  "
                f"numbers heard {result.ok_total:5d}  lost {result.lost}",
                flush=True,
            )
    print()
    print(
        f"{args.runs} runs, {args.callers} callers, fault {args.fault}, "
        f"{args.gap} s from the fault to the promotion"
    )
    print(summary("resume after promotion (sac-ivr)", [r.resume_s for r in results]))
    print(summary("baseline: asyncpg connect+SELECT 1", [r.baseline_s for r in results]))
    print(summary("no-number window (crash..resume)", [r.window_s for r in results]))
    errors = sorted(r.errors for r in results)
    print(f"calls without a number per failover: p50 {statistics.median(errors)}  max {errors[-1]}")
    print(f"numbers heard but lost: {sum(r.lost for r in results)}")


if __name__ == "__main__":
    asyncio.run(main())
