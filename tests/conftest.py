"""Shared fixtures: databases (SQLite and PostgreSQL), core, a running server.

PostgreSQL: the server on 127.0.0.1:5432 (override with SAC_IVR_TEST_PG_URL, an
asyncpg URL of a database the tests may CREATE DATABASE from). Where it is not
reachable the PostgreSQL variants skip, unless SAC_IVR_REQUIRE_POSTGRES=1 (set by
.ci/run): then they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sac_ivr.config import Settings
from sac_ivr.core import Core
from sac_ivr.db.migrate import upgrade
from sac_ivr.features import build_core, load_settings
from sac_ivr.runner import RunningService, start_service

# Headless Chromium fixtures (browser, chromium) for any test: tests/browser.py.
pytest_plugins = ("tests.browser",)

STRICT_SKIPS = os.environ.get("SAC_IVR_STRICT_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """With SAC_IVR_STRICT_SKIPS=1 (.ci/run) every skip is a failure: in CI a test
    skipped for a missing Asterisk, PostgreSQL, Chromium or tool hides a gap."""
    outcome = yield
    report = outcome.get_result()
    if STRICT_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (SAC_IVR_STRICT_SKIPS=1): {reason}"


PG_ADMIN_URL = os.environ.get(
    "SAC_IVR_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("SAC_IVR_REQUIRE_POSTGRES") == "1"


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_execute(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_dsn(PG_ADMIN_URL), timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


_pg_template: str | None = None
_pg_error: str | None = None


def _pg_database_url(name: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def postgres_template() -> str:
    """A migrated template database, made once per test session."""
    global _pg_template, _pg_error
    if _pg_template is None and _pg_error is None:
        name = f"sac_ivr_tpl_{os.getpid()}"
        try:
            asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}"'))
            asyncio.run(_pg_execute(f'CREATE DATABASE "{name}"'))
        except Exception as exc:
            _pg_error = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
        else:
            upgrade(_pg_database_url(name))
            _pg_template = name
    if _pg_error:
        if REQUIRE_POSTGRES:
            pytest.fail(_pg_error)
        pytest.skip(_pg_error)
    assert _pg_template
    return _pg_template


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_JOURNALS, ignore_errors=True)
    if _pg_template:
        try:
            asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{_pg_template}"'))
        except Exception:
            pass


def new_database(kind: str, tmp_path: Path) -> tuple[str, str | None]:
    """(url, postgres database name to drop afterwards)."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'sac.sqlite3'}"
        upgrade(url)
        return url, None
    template = postgres_template()
    name = f"sac_ivr_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    return _pg_database_url(name), name


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: once on SQLite, once on PostgreSQL."""
    url, pg_name = new_database(request.param, tmp_path)
    yield url
    if pg_name:
        asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url, _ = new_database("sqlite", tmp_path)
    return url


# Each core's outage journal (PostgreSQL) in a folder of this session, not var/.
_JOURNALS = Path(tempfile.mkdtemp(prefix="sac-ivr-journals-"))


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "agi_port": 0,
        "http_port": 0,
        "log_level": "WARNING",
        "protocol_journal_path": str(_JOURNALS / f"{uuid.uuid4().hex}.sqlite3"),
    }
    values.update(overrides)
    return load_settings(env={}, overrides=values)


@pytest.fixture
async def core(db_url: str) -> AsyncIterator[Core]:
    svc = build_core(make_settings(db_url))
    yield svc
    await svc.close()


@pytest.fixture
async def running(db_url: str) -> AsyncIterator[RunningService]:
    """sac-ivr listening on ephemeral FastAGI and HTTP ports, in this process."""
    service = await start_service(make_settings(db_url), migrate=False)
    yield service
    await service.stop(drain_seconds=1.0)


@pytest.fixture
async def running_sqlite(sqlite_url: str) -> AsyncIterator[RunningService]:
    service = await start_service(make_settings(sqlite_url), migrate=False)
    yield service
    await service.stop(drain_seconds=1.0)
