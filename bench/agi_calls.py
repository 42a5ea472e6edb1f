"""FastAGI call-path benchmark: ``sac-ivr serve`` vs a bare panoramisk route.

Both servers run as their own process; this process plays Asterisk (the agi_* block
as Asterisk 22 sends it, every command answered the way Asterisk answers it). The
measured figure per call is the time from connect to the first audio command
(STREAM FILE): for sac-ivr that includes issuing the number and COMMITTING it
durably (SQLite WAL, synchronous=FULL) — the caller hears nothing before that.

Two loads, each run against both servers in the same run:

* **in progress** — CONCURRENCY callers, each starting a call every PERIOD seconds
  and listening to it: every prompt "plays" for AUDIO_MS before Asterisk answers,
  the repeat offer times out, the caller stays to the end. With the defaults about
  100 calls are in progress at any moment at ~330 new calls/s — a very busy SAC.
  This is where the p99 target applies.
* **saturation** — CONCURRENCY callers in a closed loop with no pause, each hanging
  up at the first audio command (``200 result=-1``): the most calls/s each server
  can take. Latency here is mostly queueing (concurrency / throughput).

    python -m bench.agi_calls [--concurrency 100] [--duration 5] [--period 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakeasterisk.agi import agi_headers  # noqa: E402


@dataclass
class Run:
    name: str
    calls: int
    errors: int
    seconds: float
    first_audio_ms: list[float]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.first_audio_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def one_call(port: int, headers: bytes, audio_s: float | None) -> float:
    """One call; ``audio_s`` None hangs up at the first audio command."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(headers)
    first_audio = None
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            if line.startswith(b"STREAM FILE"):
                first_audio = first_audio or time.perf_counter()
                if audio_s is None:
                    writer.write(b"200 result=-1 endpos=0\n")  # caller hangs up
                else:
                    await asyncio.sleep(audio_s)  # the prompt plays
                    writer.write(b"200 result=0 endpos=8000\n")
            elif line.startswith(b"WAIT FOR DIGIT"):
                writer.write(b"200 result=0\n")  # no key pressed
            else:
                writer.write(b"200 result=1\n")
            await writer.drain()
    finally:
        writer.close()
    if first_audio is None:
        raise RuntimeError("no audio command")
    return (first_audio - start) * 1000


async def load(
    name: str,
    port: int,
    concurrency: int,
    duration: float,
    audio_s: float | None = None,
    period: float = 0.0,
) -> Run:
    first_audio: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    headers = agi_headers("protocol", port=port, args=("1700000000.1",))

    async def caller(offset: float) -> None:
        nonlocal errors
        await asyncio.sleep(offset)  # spread the callers over one period
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                first_audio.append(await one_call(port, headers, audio_s))
            except Exception:
                errors += 1
            if period:
                await asyncio.sleep(max(0.0, period - (time.perf_counter() - started)))

    start = time.perf_counter()
    await asyncio.gather(*(caller(i * period / concurrency) for i in range(concurrency)))
    return Run(name, len(first_audio), errors, time.perf_counter() - start, first_audio)


def start(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """Start a server that prints ``READY agi=PORT [http=PORT]``; returns it and its
    ports by name."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise SystemExit(f"{cmd} did not start")
    ports = dict(field.split("=") for field in line.split()[1:])
    return proc, {name: int(port) for name, port in ports.items()}


def table(title: str, runs: list[Run]) -> None:
    print(title)
    print(
        f"  {'':26}{'calls/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'calls':>8}{'errors':>8}"
    )
    for run in runs:
        print(
            f"  {run.name:26}{run.rate:9.0f}{run.pct(50):9.2f}{run.pct(99):9.2f}"
            f"{max(run.first_audio_ms):9.2f}{run.calls:8d}{run.errors:8d}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load and server")
    parser.add_argument("--period", type=float, default=0.3, help="in progress: s between calls")
    parser.add_argument("--audio-ms", type=float, default=10.0, help="in progress: ms per prompt")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
        env = {
            **os.environ,
            "SAC_IVR_DATABASE_URL": db_url,
            "SAC_IVR_AGI_PORT": "0",
            "SAC_IVR_HTTP_PORT": "0",
            "SAC_IVR_LOG_LEVEL": "WARNING",
        }
        bare, bare_ports = start([sys.executable, "-m", "bench.bare_panoramisk"], env)
        sac, sac_ports = start([sys.executable, "-m", "sac_ivr", "serve"], env)
        bare_port, sac_port = bare_ports["agi"], sac_ports["agi"]
        servers = [("bare panoramisk route", bare_port), ("sac-ivr protocol route", sac_port)]
        try:
            for _, port in servers:  # warm up: imports, first connections, first pages
                asyncio.run(load("warm-up", port, 10, 0.5))
            paced = [
                asyncio.run(
                    load(
                        name,
                        port,
                        args.concurrency,
                        args.duration,
                        args.audio_ms / 1000,
                        args.period,
                    )
                )
                for name, port in servers
            ]
            saturated = [
                asyncio.run(load(name, port, args.concurrency, args.duration))
                for name, port in servers
            ]
        finally:
            for proc in (bare, sac):
                proc.terminate()
                proc.wait(timeout=15)

    backend = db_url.split(":", 1)[0]
    print(
        f"FastAGI, connect -> first audio command; database {backend} (durable commits); "
        f"{os.cpu_count()} CPUs shared by client and servers"
    )
    table(
        f"in progress: {args.concurrency} callers, a call every {args.period:g} s each, "
        f"{args.audio_ms:g} ms per prompt, {args.duration:g} s",
        paced,
    )
    table(f"saturation: {args.concurrency} callers, closed loop, {args.duration:g} s", saturated)
    base, ours = saturated
    print(
        f"sac-ivr p99 in progress: {paced[1].pct(99):.2f} ms (target <= 20 ms); "
        f"sac-ivr / bare calls/s at saturation: {ours.rate / base.rate:.0%} (target >= 50%)"
    )


if __name__ == "__main__":
    main()
