"""Good calls during floods: ``sac-ivr serve`` alone and under each flood, side by side.

One ``sac-ivr serve`` (supervisor, call process, web process; SQLite, durable
commits). This process plays Asterisk for the good calls, paced as in
``bench.agi_calls`` ("in progress": CONCURRENCY callers, a call every PERIOD seconds
each, every prompt playing AUDIO_MS, the caller listening to the end), and measures
each call's connect -> first audio command, and the calls that failed (no number, an
error, or no first prompt within 10 s). Each flood comes from flooder processes of
its own (``--flood``) and is sustained: a connection the server closes is opened
again a second later.

Floods (each run separately, in the same run as the baseline):

* FastAGI half-open: 3,000 connections that send nothing;
* FastAGI slow: 3,000 connections sending a valid header one byte a second;
* FastAGI garbage: 3,000 connections sending an HTTP request instead of FastAGI;
* FastAGI outsider: 3,000 half-open connections from 127.0.0.2, outside
  agi_allowed_peers (127.0.0.1/32 here);
* HTTP slow: 20,000 connections from 100 addresses (127.0.1.x) sending their
  headers one byte a second.

Target (issue #8 item 4): good calls' p99 within 2x of the unloaded figure during
each FastAGI flood.

    python -m bench.floods [--duration 8] [--concurrency 20] [--period 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agi_calls import one_call, start  # noqa: E402
from tests.fakeasterisk.agi import agi_headers  # noqa: E402

CALL_TIMEOUT_S = 10.0
RECONNECT_S = 1.0


@dataclass(frozen=True)
class Flood:
    name: str
    kind: str  # agi-half-open, agi-slow, agi-garbage, http-slow
    total: int
    processes: int = 1
    sources: tuple[str, ...] = ("127.0.0.1",)


FLOODS = [
    Flood("FastAGI half-open x3000", "agi-half-open", 3000),
    Flood("FastAGI 1 byte/s x3000", "agi-slow", 3000),
    Flood("FastAGI garbage x3000", "agi-garbage", 3000),
    Flood("FastAGI outsider x3000", "agi-half-open", 3000, sources=("127.0.0.2",)),
    Flood(
        "HTTP slow x20000",
        "http-slow",
        20000,
        processes=2,
        sources=tuple(f"127.0.1.{i}" for i in range(1, 101)),
    ),
]


# ----------------------------------------------------------------- a flooder process
def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def flood(kind: str, count: int, port: int, sources: list[str]) -> None:
    header = agi_headers("protocol", port=port)
    attempted = 0
    all_attempted = asyncio.Event()

    def tried() -> None:
        nonlocal attempted
        attempted += 1
        if attempted == count:
            all_attempted.set()

    async def trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await asyncio.sleep(1.0)
        while True:  # a header that never ends
            writer.write(b"X")
            await asyncio.sleep(1.0)

    async def slot(index: int) -> None:
        source = sources[index % len(sources)]
        first = True
        while True:
            writer = None
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source, 0)
                )
                if first:
                    tried()
                    first = False
                feeder = None
                if kind == "agi-slow":
                    feeder = asyncio.create_task(trickle(writer, header))
                elif kind == "agi-garbage":
                    writer.write(b"GET / HTTP/1.1\r\nHost: sac\r\n\r\n")
                elif kind == "http-slow":
                    feeder = asyncio.create_task(trickle(writer, b"GET /healthz HTTP/1.1\r\n"))
                try:
                    await reader.read()  # until the server closes it
                finally:
                    if feeder is not None:
                        feeder.cancel()
            except OSError:
                if first:
                    tried()
                    first = False
            finally:
                if writer is not None:
                    writer.close()
            await asyncio.sleep(RECONNECT_S)

    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(slot(i)))
        if i % 200 == 199:
            await asyncio.sleep(0.01)
    await all_attempted.wait()
    print("ready", flush=True)
    await asyncio.Event().wait()


def flooder_main(args: argparse.Namespace) -> None:
    from sac_ivr.supervisor import _die_with_parent

    _die_with_parent(os.getppid())  # never outlive the benchmark
    raise_fd_limit()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    asyncio.run(flood(args.flood, args.count, args.port, args.sources.split(",")))


# ------------------------------------------------------------------ the measurement
@dataclass
class Result:
    name: str
    calls: int
    failed: int
    seconds: float
    first_audio_ms: list[float]

    def pct(self, p: float) -> float:
        ordered = sorted(self.first_audio_ms) or [float("nan")]
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def good_calls(
    name: str, port: int, concurrency: int, duration: float, period: float, audio_s: float
) -> Result:
    first_audio: list[float] = []
    failed = 0
    headers = agi_headers("protocol", port=port, args=("1700000000.1",))
    deadline = time.perf_counter() + duration

    async def caller(offset: float) -> None:
        nonlocal failed
        await asyncio.sleep(offset)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(CALL_TIMEOUT_S + 5):
                    latency = await one_call(port, headers, audio_s)
                if latency > CALL_TIMEOUT_S * 1000:
                    failed += 1
                else:
                    first_audio.append(latency)
            except Exception:
                failed += 1
            await asyncio.sleep(max(0.0, period - (time.perf_counter() - started)))

    began = time.perf_counter()
    await asyncio.gather(*(caller(i * period / concurrency) for i in range(concurrency)))
    return Result(name, len(first_audio), failed, time.perf_counter() - began, first_audio)


def start_flood(spec: Flood, agi_port: int, http_port: int) -> list[subprocess.Popen[str]]:
    port = http_port if spec.kind.startswith("http") else agi_port
    procs = []
    per = spec.total // spec.processes
    for n in range(spec.processes):
        sources = spec.sources[n :: spec.processes] or spec.sources
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.floods",
                    "--flood",
                    spec.kind,
                    "--count",
                    str(per),
                    "--port",
                    str(port),
                    "--sources",
                    ",".join(sources),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"flooder for {spec.name} did not start")
    return procs


def stop_flood(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(10)


def table(results: list[Result], base: Result) -> None:
    print(
        f"  {'':26}{'calls':>7}{'failed':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'p99 / alone':>13}"
    )
    for r in results:
        worst = max(r.first_audio_ms) if r.first_audio_ms else float("nan")
        ratio = r.pct(99) / base.pct(99) if base.first_audio_ms else float("nan")
        print(
            f"  {r.name:26}{r.calls:7d}{r.failed:8d}{r.pct(50):9.2f}{r.pct(99):9.2f}"
            f"{worst:9.2f}{ratio:12.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of calls per row")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--period", type=float, default=0.1, help="s between calls per caller")
    parser.add_argument("--audio-ms", type=float, default=10.0, help="ms per prompt")
    parser.add_argument("--flood", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sources", default="127.0.0.1", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        flooder_main(args)
        return
    raise_fd_limit()

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SAC_IVR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.sqlite3",
            "SAC_IVR_AGI_PORT": "0",
            "SAC_IVR_HTTP_PORT": "0",
            "SAC_IVR_LOG_LEVEL": "WARNING",
            "SAC_IVR_AGI_ALLOWED_PEERS": "127.0.0.1/32",
        }
        proc, ports = start([sys.executable, "-m", "sac_ivr", "serve"], env)
        agi_port, http_port = ports["agi"], ports["http"]
        try:
            load = (args.concurrency, args.duration, args.period, args.audio_ms / 1000)
            asyncio.run(good_calls("warm-up", agi_port, 5, 1.0, 0.1, 0.0))
            results = [asyncio.run(good_calls("alone", agi_port, *load))]
            for spec in FLOODS:
                flooders = start_flood(spec, agi_port, http_port)
                try:
                    results.append(asyncio.run(good_calls(spec.name, agi_port, *load)))
                finally:
                    stop_flood(flooders)
                time.sleep(1.0)  # let the server close what the flooders left
            # The machine's own noise: the baseline again, after the floods.
            results.append(asyncio.run(good_calls("alone, again", agi_port, *load)))
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    print(
        "FastAGI good calls, connect -> first audio command, during floods; sac-ivr serve "
        f"(supervisor + call and web processes), SQLite durable; {os.cpu_count()} CPUs shared "
        "by the calls' client, the flooders and the server"
    )
    print(
        f"calls: {args.concurrency} callers, a call every {args.period:g} s each, "
        f"{args.audio_ms:g} ms per prompt, {args.duration:g} s per row; floods sustained "
        f"(closed connections reopened after {RECONNECT_S:g} s)"
    )
    table(results, results[0])
    agi = [r for r in results if r.name.startswith("FastAGI")]
    worst = max(agi, key=lambda r: r.pct(99))
    print(
        f"worst FastAGI flood p99: {worst.pct(99):.2f} ms = "
        f"{worst.pct(99) / results[0].pct(99):.1f}x alone (target <= 2x); "
        f"failed calls in all floods: {sum(r.failed for r in results[1:-1])}"
    )


if __name__ == "__main__":
    main()
