"""Reports back to back on a large database while calls come in (issue #8 item 3).

The real ``sac-ivr serve`` on 50,000 generated protocols (timelines, calls, outbox:
bench/gen_data.py), on SQLite and on PostgreSQL. A supervisor's client asks for the
30-day summary, the /reports page and the by-agent table in turn, without pause,
while rounds of 100 simultaneous calls come in: every caller must get a number and
hear it, and every report must be answered. (How long callers wait is measured by
bench/reports_during_calls.py, not asserted here.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from bench.gen_data import generate
from sac_ivr.db.migrate import upgrade
from tests.conftest import new_database
from tests.fakeasterisk.agi import fake_call
from tests.serve_proc import ServeProcess

REPORTS = ("/api/v1/reports/summary", "/reports", "/api/v1/reports/by-agent")
ROUNDS = 4
CALLS_PER_ROUND = 100


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def large_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("large")
    url, pg_name = new_database(request.param, tmp)
    upgrade(url)
    generate(url, 50_000, days=400, seed=11)
    yield url
    if pg_name:
        from tests.conftest import _pg_execute

        asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


def _run(args: list[str], env: dict[str, str]) -> str:
    command = [sys.executable, "-m", "sac_ivr", *args]
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout


async def test_every_caller_gets_a_number_while_reports_run(large_db: str, tmp_path: Path) -> None:
    env = {"SAC_IVR_DATABASE_URL": large_db, "SAC_IVR_LOG_LEVEL": "WARNING"}
    token = _run(
        ["token", "create", f"chefe-{tmp_path.name}", "--role", "supervisor"], {**os.environ, **env}
    )
    token = token.strip().splitlines()[-1]
    server = ServeProcess(tmp_path / "serve", env=env).start()
    agi_port, http_port = server.agi_port, server.http_port
    try:
        calls_done = asyncio.Event()
        reports_started = asyncio.Event()
        statuses: list[int] = []

        async def reports() -> None:
            now = datetime.now(UTC)
            period = {"from": (now - timedelta(days=30)).isoformat(), "until": now.isoformat()}
            headers = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession(headers=headers) as http:
                n = 0
                while not calls_done.is_set():
                    url = f"http://127.0.0.1:{http_port}{REPORTS[n % len(REPORTS)]}"
                    n += 1
                    reports_started.set()
                    async with http.get(url, params=period) as response:
                        await response.read()
                        statuses.append(response.status)

        async def calls() -> list[str | None]:
            numbers: list[str | None] = []
            try:
                await reports_started.wait()
                for round_ in range(ROUNDS):
                    results = await asyncio.gather(
                        *(
                            fake_call(
                                "127.0.0.1",
                                agi_port,
                                args=(f"rep.{round_}.{i}",),
                                uniqueid=f"rep.{round_}.{i}",
                                timeout=30,
                            )
                            for i in range(CALLS_PER_ROUND)
                        )
                    )
                    for result in results:
                        number = result.variables.get("SAC_PROTOCOL")
                        assert result.variables.get("SAC_RESULT") == "OK", result.commands[:6]
                        assert result.digits_between()[:1] == [number]
                        numbers.append(number)
            finally:
                calls_done.set()
            return numbers

        report_task = asyncio.create_task(reports())
        numbers = await calls()
        await asyncio.wait_for(report_task, 120)
    finally:
        assert server.stop() == 0
    assert len(numbers) == ROUNDS * CALLS_PER_ROUND
    assert len(set(numbers)) == len(numbers)  # each caller its own number
    # A report was in flight from before the first call to after the last one.
    assert statuses
    assert set(statuses) == {200}
