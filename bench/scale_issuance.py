"""Issuance at scale: calls/s and p99 with 1, 2 and 4 ``sac-ivr serve`` instances on
one PostgreSQL database, beside one instance on SQLite and beside the bare panoramisk
route, all in one run (issue #10 item 8).

This process plays Asterisk for every server (see :mod:`bench.agi_calls`): CONCURRENCY
callers in a closed loop, each hanging up at the first audio command, spread
round-robin over the instances' FastAGI ports, as the dialplan's ``SAC_AGI_HOSTS``
spreads nothing (it fails over in order) but a Kamailio in front of several Asterisk,
each listing a different instance first, would. The figure per call is connect ->
first audio command: the number issued and committed.

    python -m bench.scale_issuance [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432]
        [--concurrency 100] [--duration 5] [--instances 1,2,4]

A fresh database ``bench_scale_<pid>`` is created on that server for each PostgreSQL
row and dropped afterwards. All servers and the client share this machine's CPUs:
with more instances than cores the figures show contention, not scale-out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agi_calls import Run, one_call, start, table  # noqa: E402
from tests.fakeasterisk.agi import agi_headers  # noqa: E402


async def spread_load(name: str, ports: list[int], concurrency: int, duration: float) -> Run:
    """CONCURRENCY closed-loop callers, caller i always on ``ports[i % len(ports)]``."""
    first_audio: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def caller(port: int) -> None:
        nonlocal errors
        headers = agi_headers("protocol", port=port, args=("1700000000.1",))
        while time.perf_counter() < deadline:
            try:
                first_audio.append(await one_call(port, headers, None))
            except Exception:
                errors += 1

    begun = time.perf_counter()
    await asyncio.gather(*(caller(ports[i % len(ports)]) for i in range(concurrency)))
    return Run(name, len(first_audio), errors, time.perf_counter() - begun, first_audio)


def _env(database_url: str, journal: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "SAC_IVR_DATABASE_URL": database_url,
        "SAC_IVR_AGI_PORT": "0",
        "SAC_IVR_HTTP_PORT": "0",
        "SAC_IVR_LOG_LEVEL": "WARNING",
    }
    if journal:  # one outage journal per instance, as in a deployment
        env["SAC_IVR_PROTOCOL_JOURNAL_PATH"] = journal
    return env


@contextlib.contextmanager
def servers(database_url: str, count: int) -> Iterator[list[int]]:
    """``count`` instances of ``sac-ivr serve`` on one database; yields their AGI
    ports. The first migrates; the others start once it is ready."""
    procs: list[subprocess.Popen[str]] = []
    ports: list[int] = []
    journals = tempfile.TemporaryDirectory()
    try:
        for index in range(count):
            env = _env(database_url, f"{journals.name}/journal-{index}.sqlite3")
            proc, found = start([sys.executable, "-m", "sac_ivr", "serve"], env)
            procs.append(proc)
            ports.append(found["agi"])
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        journals.cleanup()


async def _admin(server_url: str, statement: str) -> None:
    url = make_url(server_url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False), timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_postgres(server_url: str) -> Iterator[str]:
    """A new empty database on ``server_url``'s server; dropped on exit."""
    name = f"bench_scale_{os.getpid()}"
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}"'))
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def measure(name: str, ports: list[int], concurrency: int, duration: float) -> Run:
    asyncio.run(spread_load("warm-up", ports, min(concurrency, 10), 0.5))
    return asyncio.run(spread_load(name, ports, concurrency, duration))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--instances", default="1,2,4")
    args = parser.parse_args()
    counts = [int(n) for n in args.instances.split(",")]

    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(f"sqlite+aiosqlite:///{tmp}/bare.sqlite3")
        bare, bare_ports = start([sys.executable, "-m", "bench.bare_panoramisk"], env)
        try:
            runs.append(
                measure(
                    "bare panoramisk route", [bare_ports["agi"]], args.concurrency, args.duration
                )
            )
        finally:
            bare.terminate()
            bare.wait(timeout=15)
        with servers(f"sqlite+aiosqlite:///{tmp}/bench.sqlite3", 1) as ports:
            runs.append(measure("sac-ivr, SQLite, 1", ports, args.concurrency, args.duration))
    for count in counts:
        with fresh_postgres(args.postgres_url) as url, servers(url, count) as ports:
            runs.append(
                measure(f"sac-ivr, PostgreSQL, {count}", ports, args.concurrency, args.duration)
            )

    print(
        f"FastAGI issuance at saturation, connect -> first audio command; {args.concurrency} "
        f"callers, closed loop, {args.duration:g} s each; {os.cpu_count()} CPUs shared by the "
        "client and every server"
    )
    table("instances", runs)
    bare_rate = runs[0].rate
    for run in runs[1:]:
        print(f"  {run.name:26} {run.rate / bare_rate:6.0%} of the bare route's calls/s")


if __name__ == "__main__":
    main()
