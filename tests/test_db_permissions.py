"""The SQLite database, its WAL and its shared-memory file are readable by their
owner only (issue #8 item 15): they hold callers' numbers, names, CPF/CNPJ, notes."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from sac_ivr.db.engine import create_engine
from sac_ivr.db.migrate import upgrade_async


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what a service usually runs with: files 0644 by default
    yield
    os.umask(old)


def modes(database: Path) -> dict[str, int]:
    found = {}
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{database}{suffix}")
        if path.exists():
            found[suffix or "db"] = stat.S_IMODE(path.stat().st_mode)
    return found


async def write_and_check(database: Path) -> dict[str, int]:
    """Modes while a connection is open (SQLite removes the WAL at the last close)."""
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with engine.connect() as connection:
            await connection.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
            await connection.execute(text("INSERT INTO probe VALUES (1)"))
            await connection.commit()
            return modes(database)
    finally:
        await engine.dispose()


async def test_a_new_database_and_its_wal_are_0600(tmp_path: Path) -> None:
    database = tmp_path / "var" / "sac-ivr.sqlite3"
    await upgrade_async(f"sqlite+aiosqlite:///{database}")  # what `sac-ivr serve` does first
    assert modes(database)["db"] == 0o600
    found = await write_and_check(database)
    assert found == {"db": 0o600, "-wal": 0o600, "-shm": 0o600}


async def test_files_left_readable_by_others_are_narrowed(tmp_path: Path) -> None:
    database = tmp_path / "old.sqlite3"
    with sqlite3.connect(database) as old:  # as an older version left it: 0644
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE probe (x INTEGER)")
    assert modes(database)["db"] == 0o644
    found = await write_and_check(database)
    assert found == {"db": 0o600, "-wal": 0o600, "-shm": 0o600}
