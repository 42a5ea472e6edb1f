"""Issuance through a PostgreSQL outage: calls/s and p99 with the database up, then
stopped (numbers from the outage reserve, journaled locally), in the same run.

A private PostgreSQL cluster (tests/private_postgres.py) and ``sac-ivr serve`` with
its reserve, beside one without (``protocol_reserve_block=0``, database up only);
this process plays Asterisk (bench/agi_calls.py's loads: "in progress" paced callers
and "saturation" closed loop). After the outage the database is started again and
the replay is awaited: the bench checks that every number issued is stored.

    python -m bench.outage_issuance [--concurrency 100] [--duration 5] [--period 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.agi_calls import Run, load, start, table  # noqa: E402
from sac_ivr.db.engine import create_engine  # noqa: E402
from sac_ivr.db.migrate import upgrade_async  # noqa: E402
from sac_ivr.protocols.tables import Protocol  # noqa: E402
from tests.private_postgres import PrivatePostgres  # noqa: E402


async def stored_count(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(select(func.count(Protocol.id)))).scalar_one())
    finally:
        await engine.dispose()


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def blocks(journal: Path) -> int:
    if not journal.exists():
        return 0
    with sqlite3.connect(journal) as db:
        try:
            return int(db.execute("SELECT count(*) FROM blocks").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def journaled_count(journal: Path) -> int:
    with sqlite3.connect(journal) as db:
        return int(db.execute("SELECT count(*) FROM issued").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load")
    parser.add_argument("--period", type=float, default=0.3, help="in progress: s between calls")
    parser.add_argument("--audio-ms", type=float, default=10.0, help="in progress: ms per prompt")
    args = parser.parse_args()

    with PrivatePostgres() as pg, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(upgrade_async(pg.url))
        journal = Path(tmp) / "journal.sqlite3"
        env = {
            **os.environ,
            "SAC_IVR_DATABASE_URL": pg.url,
            "SAC_IVR_AGI_PORT": "0",
            "SAC_IVR_HTTP_PORT": "0",
            "SAC_IVR_LOG_LEVEL": "WARNING",
            "SAC_IVR_PROTOCOL_JOURNAL_PATH": str(journal),
            "SAC_IVR_PROTOCOL_RESERVE_BLOCK": "100000",
        }
        serve = [sys.executable, "-m", "sac_ivr", "serve", "--no-migrate"]
        # The same service without a reserve: the normal path's cost of the bound.
        plain, plain_ports = start(serve, {**env, "SAC_IVR_PROTOCOL_RESERVE_BLOCK": "0"})
        sac, ports = start(serve, env)
        port = ports["agi"]
        runs: dict[str, list[Run]] = {"paced": [], "saturated": []}
        answered = 0  # calls that got their number (first audio)
        journaled_up = 0
        try:
            answered += asyncio.run(load("warm-up", plain_ports["agi"], 10, 0.5)).calls
            answered += asyncio.run(load("warm-up", port, 10, 0.5)).calls
            wait_for(lambda: blocks(journal) >= 2, 30, "the reserve")
            for state in ("up, no reserve", "database up", "database stopped"):
                if state == "database stopped":
                    # Batches slower than protocol_db_timeout under this load also
                    # take reserve numbers: count them.
                    journaled_up = journaled_count(journal)
                    plain.terminate()
                    plain.wait(timeout=15)
                    pg.stop()
                    answered += asyncio.run(load("warm-up (outage)", port, 10, 0.5)).calls
                target = plain_ports["agi"] if state == "up, no reserve" else port
                runs["paced"].append(
                    asyncio.run(
                        load(
                            state,
                            target,
                            args.concurrency,
                            args.duration,
                            args.audio_ms / 1000,
                            args.period,
                        )
                    )
                )
                runs["saturated"].append(
                    asyncio.run(load(state, target, args.concurrency, args.duration))
                )
            answered += sum(run.calls for run in runs["paced"] + runs["saturated"])
            journaled = journaled_count(journal) - journaled_up
            pg.start()
            started = time.monotonic()
            wait_for(lambda: not _pending(journal), 300, "the replay of the journal")
            replay_s = time.monotonic() - started
            total = asyncio.run(stored_count(pg.url))
        finally:
            for proc in (plain, sac):
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=15)

    print(
        f"FastAGI protocol route, connect -> first audio command; PostgreSQL (private "
        f"cluster, fsync off) up, then stopped; {os.cpu_count()} CPUs shared by all"
    )
    table(
        f"in progress: {args.concurrency} callers, a call every {args.period:g} s each, "
        f"{args.audio_ms:g} ms per prompt, {args.duration:g} s",
        runs["paced"],
    )
    table(
        f"saturation: {args.concurrency} callers, closed loop, {args.duration:g} s",
        runs["saturated"],
    )
    print(
        f"reserve numbers with the database up (batches past protocol_db_timeout): "
        f"{journaled_up}; journaled during the outage: {journaled}; replayed in "
        f"{replay_s:.1f} s after the start; calls that got a number: {answered}, "
        f"protocols stored: {total}"
    )


def _pending(journal: Path) -> int:
    with sqlite3.connect(journal) as db:
        return int(
            db.execute("SELECT count(*) FROM issued WHERE replayed_at IS NULL").fetchone()[0]
        )


if __name__ == "__main__":
    main()
