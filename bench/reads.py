"""Reads at scale: p50/p99 of every report and listing, one request at a time,
through the real aiohttp app, on a large database (bench/gen_data.py).

    python -m bench.reads DATABASE_URL [--runs 20] [--before-runs 0]

sac-ivr (both roles, in this process, AMI off) serves on ephemeral ports; a
supervisor token is created for the run and revoked at the end. Each operation is
asked ``--runs`` times after one warm-up request, one at a time. Beside the figures,
from the same run:

- ``SELECT 1``: a database round trip through the service's own reader session;
- ``GET /api/v1/session``: an HTTP round trip through the app's middleware (token
  check included) with no query of the data;
- with ``--before-runs N``: the 30-day summary computed by the report code as it was
  before issue #10 item 7 (bench/reports_before.py), N times, on the same data.

The customer with 500 protocols and the agent are those bench/gen_data.py makes
(customer 1, ``agente07`` = ``PJSIP/1007``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sac_ivr.auth.services import create_token  # noqa: E402
from sac_ivr.features import load_settings  # noqa: E402
from sac_ivr.runner import start_service  # noqa: E402

HEAVY_PHONE = "+5511900000001"  # bench/gen_data.py: customer 1 has 500 protocols
AGENT = "agente07"
AGENT_INTERFACE = "PJSIP/1007"


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


async def timed(fn: Callable[[], Awaitable[Any]], runs: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        await fn()
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - started)
    return out


def operations(period: dict[str, str]) -> list[tuple[str, str, dict[str, str]]]:
    return [
        ("reports summary, 30 days", "/api/v1/reports/summary", period),
        ("the /reports page, 30 days", "/reports", period),
        ("reports by agent, 30 days", "/api/v1/reports/by-agent", period),
        ("reports by subject, 30 days", "/api/v1/reports/by-subject", period),
        ("reports calls per hour, 30 days", "/api/v1/reports/calls-per-hour", period),
        ("overdue list (first 50)", "/api/v1/reports/overdue", {"limit": "50"}),
        ("pending list (first 50)", "/api/v1/reports/pending", {"limit": "50"}),
        ("due-soon list (first 50)", "/api/v1/reports/due-soon", {"limit": "50"}),
        ("calls by agent (name)", "/api/v1/calls", {"agent": AGENT}),
        ("calls by agent (interface)", "/api/v1/calls", {"agent": AGENT_INTERFACE}),
        ("calls listing, newest 50", "/api/v1/calls", {}),
        ("calls of one day", "/api/v1/calls", _one_day()),
        ("protocols of the 500-protocol customer", "/api/v1/protocols", {"phone": HEAVY_PHONE}),
        ("protocols listing, newest 50", "/api/v1/protocols", {}),
        ("protocols listing, overdue", "/api/v1/protocols", {"overdue": "true"}),
        ("history of the 500-protocol customer", "/api/v1/history", {"phone": HEAVY_PHONE}),
        ("notifications listing", "/api/v1/notifications", {}),
        ("access log listing", "/api/v1/access-log", {}),
        ("history requests listing", "/api/v1/history-requests", {}),
    ]


def _one_day() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "from": (now - timedelta(days=2)).isoformat(),
        "until": (now - timedelta(days=1)).isoformat(),
    }


async def run(database_url: str, runs: int, before_runs: int) -> None:
    settings = load_settings(
        env={},
        overrides={
            "database_url": database_url,
            "agi_port": 0,
            "http_port": 0,
            "log_level": "WARNING",
        },
    )
    service = await start_service(settings, migrate=False)
    core = service.core
    name = f"bench-reads-{time.time_ns()}"
    bearer = await create_token(core.sessionmaker, name, "supervisor")
    now = datetime.now(UTC)
    period = {"from": (now - timedelta(days=30)).isoformat(), "until": now.isoformat()}
    rows: list[tuple[str, list[float], str]] = []
    try:
        async with core.reader() as session:
            protocols = await session.scalar(text("SELECT count(*) FROM protocols"))

        async def select_one() -> None:
            async with core.reader() as session:
                await session.execute(text("SELECT 1"))

        rows.append(("baseline: SELECT 1 (reader session)", await timed(select_one, runs), ""))
        base = f"http://127.0.0.1:{service.http_port}"
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {bearer}"}, timeout=timeout
        ) as http:

            def getter(path: str, params: dict[str, str]) -> Callable[[], Awaitable[Any]]:
                async def get() -> None:
                    async with http.get(base + path, params=params) as resp:
                        body = await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"{path} {params}: {resp.status} {body[:300]!r}")

                return get

            rows.append(
                (
                    "baseline: GET /api/v1/session",
                    await timed(getter("/api/v1/session", {}), runs),
                    "",
                )
            )
            for label, path, params in operations(period):
                rows.append((label, await timed(getter(path, params), runs), path))
        if before_runs:
            from bench import reports_before
            from sac_ivr.lifecycle.services import lifecycle_of
            from sac_ivr.reports.services import Period, ReportParams

            params = ReportParams(Period(now - timedelta(days=30), now), now, 2)

            async def old_summary() -> None:
                async with core.reader() as session:
                    await reports_before.full_report(session, params, lifecycle_of(core))

            rows.append(
                (
                    "baseline: summary by the old code (service call)",
                    await timed(old_summary, before_runs, warmup=0),
                    "",
                )
            )
    finally:
        async with core.sessionmaker() as session, session.begin():
            await session.execute(
                text("UPDATE api_tokens SET revoked_at = :now WHERE name = :name"),
                {"now": datetime.now(UTC), "name": name},
            )
        await service.stop(drain_seconds=1.0)
    backend = core.engine.url.get_backend_name()
    print(f"{backend}, {protocols} protocols, {runs} requests each, one at a time")
    print(f"{'operation':<50} {'p50 ms':>9} {'p99 ms':>9}")
    for label, values, _ in rows:
        p50 = percentile(values, 0.5) * 1000
        p99 = percentile(values, 0.99) * 1000
        print(f"{label:<50} {p50:>9.1f} {p99:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--before-runs", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.runs, args.before_runs))


if __name__ == "__main__":
    main()
