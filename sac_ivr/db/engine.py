"""Async engine and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_sqlalchemy_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 15000


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """Engine with the durability settings this service relies on.

    SQLite: WAL journal with ``synchronous=FULL``: a committed protocol survives a
    power cut, and several sac-ivr processes can share the file (``busy_timeout``
    makes a writer wait for another instead of failing).
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            make_private(url.database)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # Take the write lock at BEGIN: two processes that both read first and then
        # try to write would otherwise deadlock into SQLITE_BUSY.
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def create_sync_engine(url: str | URL, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> Engine:
    """A blocking engine on the same SQLite file (pysqlite), with the same settings.

    The protocol issuer runs its batch transactions on it (see protocols/issuer.py),
    with ``busy_timeout_ms=0`` so that a held lock fails fast instead of blocking.
    """
    url = make_url(url)
    if url.get_backend_name() != "sqlite":
        raise ValueError("create_sync_engine is for SQLite only")
    engine = create_sync_sqlalchemy_engine(url.set(drivername="sqlite+pysqlite"))
    event.listen(
        engine,
        "connect",
        lambda conn, record: _sqlite_pragmas(conn, record, busy_timeout_ms),
    )
    event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def make_private(database: str) -> None:
    """The SQLite file readable by its owner only (0600), created so if missing; its
    -wal and -shm files then get the same mode from SQLite itself. Files left
    readable by others (an older version made them 0644) are narrowed too."""
    path = Path(database)
    if not path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        try:
            if name.stat().st_mode & 0o077:
                os.chmod(name, 0o600)
        except (FileNotFoundError, PermissionError):  # absent, or not ours to change
            pass


def _sqlite_pragmas(
    dbapi_connection: Any, _record: Any, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> None:
    # Let SQLAlchemy emit BEGIN itself (see the "begin" listener).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
