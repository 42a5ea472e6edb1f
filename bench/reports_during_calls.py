"""Calls while reports run: does a supervisor's report cost callers their number or
their silence?

``sac-ivr serve`` runs on a large database (bench/gen_data.py). This process plays
Asterisk (as bench/agi_calls.py does: ~100 calls in progress, every prompt "plays"
10 ms) and measures each call's connect -> first audio command, twice in the same
run: with no other load, then while a supervisor's client asks for reports back to
back (the 30-day summary, the /reports page, the by-agent table, in turn). A call
that gets no number (no audio command: the route said SAC_RESULT=ERROR) is counted
as failed.

    python -m bench.reports_during_calls [--database-url URL] [--protocols 1000000]

Without --database-url a fresh SQLite file is migrated and filled with --protocols
protocols first (about 4 minutes for a million on the 2-core machine); pass
--keep DIR to keep it there for the next run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.agi_calls import Run, load, start, table  # noqa: E402
from bench.gen_data import generate  # noqa: E402
from sac_ivr.db.migrate import upgrade  # noqa: E402

REPORTS = ("/api/v1/reports/summary", "/reports", "/api/v1/reports/by-agent")


def token(env: dict[str, str]) -> str:
    name = f"bench-{time.time_ns()}"
    out = subprocess.run(
        [sys.executable, "-m", "sac_ivr", "token", "create", name, "--role", "supervisor"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


async def reports_back_to_back(
    http_port: int, bearer: str, until: float, durations: list[float]
) -> int:
    now = datetime.now(UTC)
    period = {"from": (now - timedelta(days=30)).isoformat(), "until": now.isoformat()}
    failures = 0
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {bearer}"}, timeout=timeout
    ) as http:
        n = 0
        while time.perf_counter() < until:
            path = REPORTS[n % len(REPORTS)]
            n += 1
            started = time.perf_counter()
            async with http.get(f"http://127.0.0.1:{http_port}{path}", params=period) as resp:
                await resp.read()
                if resp.status != 200:
                    failures += 1
            durations.append(time.perf_counter() - started)
    return failures


async def calls_with_reports(
    agi_port: int, http_port: int, bearer: str, args: argparse.Namespace
) -> tuple[Run, list[float], int]:
    durations: list[float] = []
    until = time.perf_counter() + args.duration
    run, failures = await asyncio.gather(
        load(
            "calls + reports",
            agi_port,
            args.concurrency,
            args.duration,
            args.audio_ms / 1000,
            args.period,
        ),
        reports_back_to_back(http_port, bearer, until, durations),
    )
    return run, durations, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a large migrated database (bench.gen_data)")
    parser.add_argument("--protocols", type=int, default=1_000_000)
    parser.add_argument("--keep", help="directory for the generated SQLite file")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--period", type=float, default=0.3)
    parser.add_argument("--audio-ms", type=float, default=10.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.database_url
        if db_url is None:
            folder = Path(args.keep or tmp)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"reports-{args.protocols}.sqlite3"
            db_url = f"sqlite+aiosqlite:///{path}"
            if not path.exists():
                upgrade(db_url)
                stats = generate(db_url, args.protocols)
                print(f"generated {stats.protocols} protocols in {stats.seconds:.0f} s")
        env = {
            **os.environ,
            "SAC_IVR_DATABASE_URL": db_url,
            "SAC_IVR_AGI_PORT": "0",
            "SAC_IVR_HTTP_PORT": "0",
            "SAC_IVR_LOG_LEVEL": "WARNING",
        }
        bearer = token(env)
        proc, ports = start([sys.executable, "-m", "sac_ivr", "serve", "--no-migrate"], env)
        agi_port, http_port = ports["agi"], ports["http"]
        try:
            asyncio.run(load("warm-up", agi_port, 10, 1.0))
            alone = asyncio.run(
                load(
                    "calls alone",
                    agi_port,
                    args.concurrency,
                    args.duration,
                    args.audio_ms / 1000,
                    args.period,
                )
            )
            loaded, durations, report_failures = asyncio.run(
                calls_with_reports(agi_port, http_port, bearer, args)
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    backend = db_url.split(":", 1)[0]
    print(
        f"FastAGI connect -> first audio command while reports run back to back; database "
        f"{backend}; {os.cpu_count()} CPUs shared by client, service and database"
    )
    table(
        f"{args.concurrency} callers, a call every {args.period:g} s each, "
        f"{args.audio_ms:g} ms per prompt, {args.duration:g} s per phase "
        "(errors = callers left without a number)",
        [alone, loaded],
    )
    if durations:
        print(
            f"reports during the second phase: {len(durations)} done "
            f"({', '.join(p.rsplit('/', 1)[-1] for p in REPORTS)} in turn), "
            f"median {statistics.median(durations):.2f} s, max {max(durations):.2f} s, "
            f"{report_failures} failed"
        )


if __name__ == "__main__":
    main()
