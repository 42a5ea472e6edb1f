"""Reads never take the write lock (issue #8 item 3).

On SQLite every writing transaction begins IMMEDIATE (it takes the database's one
write lock at BEGIN); a report, a lookup or a listing must not, or it holds up the
issuing of numbers for as long as it runs. On PostgreSQL reading sessions are READ
ONLY. Both kinds share one engine and pool (sac_ivr/db/engine.py).
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from bench.gen_data import generate
from sac_ivr.auth.services import create_token
from sac_ivr.core import Core
from sac_ivr.protocols.tables import Protocol
from sac_ivr.runner import start_service
from tests.conftest import make_settings


async def test_a_reading_session_cannot_write(core: Core) -> None:
    async with core.reader() as session:
        with pytest.raises(DBAPIError):
            await session.execute(
                text("INSERT INTO protocol_counters (key, value) VALUES ('x', 1)")
            )
    async with core.sessionmaker() as session, session.begin():
        assert await session.scalar(text("SELECT count(*) FROM protocol_counters")) == 0


def _file(url: str) -> str:
    return url.split("///", 1)[1]


def _can_take_write_lock(path: str) -> bool:
    """Another connection (as another process would) tries the write lock, no waiting."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        probe.close()


async def test_sqlite_reading_session_leaves_the_write_lock_free(sqlite_url: str) -> None:
    core = Core.create(make_settings(sqlite_url))
    try:
        # The probe does see a lock: a writing session holds it for its whole life...
        async with core.sessionmaker() as session:
            await session.scalar(select(func.count()).select_from(Protocol))
            assert not _can_take_write_lock(_file(sqlite_url))
        # ...and a reading session, inside its open transaction, does not.
        async with core.reader() as session:
            await session.scalar(select(func.count()).select_from(Protocol))
            assert session.in_transaction()
            assert _can_take_write_lock(_file(sqlite_url))
    finally:
        await core.close()


@pytest.fixture(scope="module")
def large_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    """50,000 protocols with their timelines, calls and outbox (about 15 s to make)."""
    from sac_ivr.db.migrate import upgrade

    path: Path = tmp_path_factory.mktemp("large") / "sac.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    generate(url, 50_000, days=400, seed=7)
    return url


async def test_reports_in_progress_never_hold_the_write_lock(large_sqlite: str) -> None:
    """While report requests run back to back over HTTP, another writer is never refused
    the lock (before the fix each report held it from its first query to its last)."""
    service = await start_service(make_settings(large_sqlite), migrate=False)
    token = await create_token(service.core.sessionmaker, "chefe", "supervisor")

    stop = threading.Event()
    attempts = refused = 0

    def probe() -> None:
        nonlocal attempts, refused
        while not stop.is_set():
            attempts += 1
            if not _can_take_write_lock(_file(large_sqlite)):
                refused += 1
            stop.wait(0.002)

    now = datetime.now(UTC)
    period = {"from": (now - timedelta(days=30)).isoformat(), "until": now.isoformat()}
    base = f"http://127.0.0.1:{service.http_port}"
    thread = threading.Thread(target=probe)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            thread.start()
            for path in ("/api/v1/reports/summary", "/reports", "/api/v1/reports/by-agent") * 2:
                async with http.get(base + path, params=period) as response:
                    assert response.status == 200, await response.text()
                    await response.read()
    finally:
        stop.set()
        thread.join()
        await service.stop(drain_seconds=1.0)
    assert attempts > 50  # the probe really ran during the reports
    assert refused == 0
