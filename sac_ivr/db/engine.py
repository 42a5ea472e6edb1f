"""Async engine and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_sqlalchemy_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 15000
# PostgreSQL: a server that does not answer (frozen, partitioned) must give an error,
# not a request that waits for ever: seconds to open a connection, to get one from
# the pool, and for one statement (the longest report included).
PG_CONNECT_TIMEOUT_S = 5.0
PG_POOL_TIMEOUT_S = 5.0
PG_COMMAND_TIMEOUT_S = 60.0
# The pool's ping of a connection before handing it out: past this its server is taken
# as gone (hung, or its host cut off: the connection still looks open) and the
# connection is cut and replaced, instead of waiting the command timeout.
PG_PING_TIMEOUT_S = 1.0


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """Engine with the durability settings this service relies on.

    SQLite: WAL journal with ``synchronous=FULL``: a committed protocol survives a
    power cut, and several sac-ivr processes can share the file (``busy_timeout``
    makes a writer wait for another instead of failing).

    Errors never carry the values of a statement (callers' numbers, names, CPF…), so
    no log line can: ``hide_parameters``, and PostgreSQL's row details dropped.
    """
    kwargs.setdefault("hide_parameters", True)
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            make_private(url.database)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_timeout", PG_POOL_TIMEOUT_S)
    connect_args = kwargs.setdefault("connect_args", {})
    connect_args.setdefault("timeout", PG_CONNECT_TIMEOUT_S)
    connect_args.setdefault("command_timeout", PG_COMMAND_TIMEOUT_S)
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "handle_error", _drop_row_values)
    event.listen(engine.sync_engine, "handle_error", _read_only_is_disconnect)
    event.listen(engine.sync_engine, "handle_error", _unanswered_is_disconnect)
    host_list = None
    hosts = url.query.get("host", ())  # a str for one host=, a tuple for several
    if url.get_driver_name() == "asyncpg" and not isinstance(hosts, str) and len(hosts) > 1:
        host_list = _HostList()
        event.listen(engine.sync_engine, "do_connect", host_list.connect)
        event.listen(engine.sync_engine, "handle_error", host_list.on_error)
    if url.get_driver_name() == "asyncpg":
        _bound_the_ping(engine, host_list)
    return engine


def _cut_after(seconds: float, driver_connection: Any) -> asyncio.TimerHandle:
    """Abort the asyncpg connection's transport in ``seconds`` unless cancelled: what
    it waits for fails at once with "connection closed", which SQLAlchemy takes as a
    disconnect (drops the connection and the pool). A cancellation instead would
    send a cancel request to that same silent server and wait on it again."""
    return asyncio.get_running_loop().call_later(seconds, driver_connection.terminate)


def _bound_the_ping(engine: AsyncEngine, host_list: _HostList | None) -> None:
    """``pool_pre_ping`` with :data:`PG_PING_TIMEOUT_S`: the dialect's ping has none
    but the command timeout (a minute). A failed ping sends its host last."""
    dialect = engine.sync_engine.dialect
    ping = dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        driver_connection = dialect.get_driver_connection(dbapi_connection)
        # Runs in SQLAlchemy's greenlet, on the event loop's thread.
        timer = _cut_after(PG_PING_TIMEOUT_S, driver_connection)
        alive = False
        try:
            alive = bool(ping(dbapi_connection))
            return alive
        finally:
            timer.cancel()
            if not alive and host_list is not None:
                host_list.lost(driver_connection)

    dialect.do_ping = do_ping  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def begin_with_deadline(
    engine: AsyncEngine, seconds: float
) -> AsyncIterator[AsyncConnection]:
    """``engine.begin()`` whose connection is cut if the transaction is not over in
    ``seconds`` (PostgreSQL; SQLite gets a plain ``begin()``). For short writes that
    callers wait on: a server that stopped answering fails them in ``seconds`` rather
    than at the command timeout. Getting the connection is bounded apart (the pool
    timeout, the connect timeout, :data:`PG_PING_TIMEOUT_S`)."""
    async with engine.connect() as connection:
        timer = None
        if not is_sqlite(engine):
            raw = await connection.get_raw_connection()
            timer = _cut_after(seconds, raw.driver_connection)
        try:
            async with connection.begin():
                yield connection
        finally:
            if timer is not None:
                timer.cancel()


# PostgreSQL's "cannot execute … in a read-only transaction".
_READ_ONLY_SQL_TRANSACTION = "25006"


def _read_only_is_disconnect(context: Any) -> None:
    """A write refused as read-only, outside a transaction we made read-only: the
    connection is on a server that no longer takes writes (a standby, or an old
    primary fenced with ``default_transaction_read_only``). Treat it like a lost
    connection: SQLAlchemy then drops it and the pool, and the next connection goes
    through the host list again (``target_session_attrs=read-write``) to the primary.
    Without this the pool would keep handing out that connection, and every write
    would fail the same way."""
    error = context.original_exception
    if getattr(error, "sqlstate", None) != _READ_ONLY_SQL_TRANSACTION:
        error = getattr(error, "__cause__", None)  # the dialect wraps asyncpg's error
        if getattr(error, "sqlstate", None) != _READ_ONLY_SQL_TRANSACTION:
            return
    connection = context.connection
    if connection is not None and connection.get_execution_options().get("postgresql_readonly"):
        return  # a reader that tried to write: a bug, not a server that changed role
    context.is_disconnect = True


def _unanswered_is_disconnect(context: Any) -> None:
    """A statement that timed out (asyncpg's ``command_timeout``) or was cancelled
    (a caller's deadline) left its connection in an unknown state, most likely on a
    server that stopped answering (hung, or its host cut off without a reset: the
    connection still looks open). Drop it without a rollback (which would wait on
    that server again) and drop the pool's other connections too: they would each
    wait the same way at their next ping. A cancellation of a healthy query costs
    only new connections."""
    if isinstance(context.original_exception, TimeoutError | asyncio.CancelledError):
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = True


class NoUsableHostError(ConnectionError):
    """No host of a multi-host URL accepted a session of the wanted kind (each down,
    unreachable, starting up, or a standby when a primary is wanted). Its message
    names each host and the class of its error, nothing else."""


# Errors after which the next host of the list is worth trying; any other error
# (a wrong password, a missing database) is raised at once, as with one host.
_NEXT_HOST_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError)


class _HostList:
    """Connects through the hosts of a multi-host asyncpg URL itself, one at a time.

    asyncpg's own loop shares ONE connect timeout among all hosts: a first host that
    drops packets (powered off, cut off) would spend all of it, and the standby that
    took over would never be tried. Here each host gets an equal share of the timeout
    (the total stays :data:`PG_CONNECT_TIMEOUT_S`); the host that last accepted is
    tried first from then on, so after a failover new connections do not wait on the
    dead primary first; and a host that failed an attempt, or whose connection was
    lost, goes last.
    ``target_session_attrs`` still applies to each host (``read-write`` unless the
    URL says otherwise): a standby is passed over.
    """

    def __init__(self) -> None:
        self._order: list[tuple[str, int]] = []
        # asyncpg connection -> the host it is on
        self._host_of: weakref.WeakKeyDictionary[Any, tuple[str, int]] = weakref.WeakKeyDictionary()

    def connect(self, dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        hosts = list(zip(cparams["host"], cparams["port"], strict=True))
        if sorted(self._order) != sorted(hosts):
            self._order = hosts
        params = dict(cparams)
        params.setdefault("target_session_attrs", "read-write")
        share = float(params.get("timeout") or PG_CONNECT_TIMEOUT_S) / len(hosts)
        failures: list[str] = []
        last: BaseException | None = None
        for host, port in list(self._order):
            try:
                connection = dialect.connect(
                    *cargs, **{**params, "host": host, "port": port, "timeout": share}
                )
            except BaseException as exc:
                # Last from now on, even when the attempt was cancelled (a caller's
                # deadline shorter than the share): the next attempt starts elsewhere
                # instead of on the same silent host again.
                self._move((host, port), first=False)
                if not isinstance(exc, Exception) or not _next_host(exc):
                    raise
                failures.append(f"{host}:{port} {type(exc).__name__}")
                last = exc
                continue
            self._move((host, port), first=True)
            self._host_of[connection.driver_connection] = (host, port)
            return connection
        raise NoUsableHostError("no usable database host: " + ", ".join(failures)) from last

    def on_error(self, context: Any) -> None:
        """A connection lost (or cut for not answering, or on a server that became
        read-only): its host goes last. If it is still the primary, the next connect
        costs one refused or rejected try first, no more."""
        connection = context.connection
        if context.is_disconnect and connection is not None and not connection.invalidated:
            self.lost(connection.connection.driver_connection)

    def lost(self, driver_connection: Any) -> None:
        host = self._host_of.get(driver_connection)
        if host is not None:
            self._move(host, first=False)

    def _move(self, host: tuple[str, int], *, first: bool) -> None:
        if host in self._order:
            self._order.remove(host)
            self._order.insert(0 if first else len(self._order), host)


def _next_host(exc: BaseException) -> bool:
    """Down, unreachable, starting up, or not the kind of server wanted."""
    for error in (exc, exc.__cause__):
        if isinstance(error, _NEXT_HOST_ERRORS):
            return True
        if isinstance(
            error,
            asyncpg.TargetServerAttributeNotMatched
            | asyncpg.CannotConnectNowError
            | asyncpg.PostgresConnectionError,
        ):
            return True
    return False


_ARGUMENT_VALUE = re.compile(r"(invalid input for query argument \$\d+: ).*?( \()", re.S)


def _drop_row_values(context: Any) -> None:
    """PostgreSQL's DETAIL copies values into the error ("Failing row contains (…)",
    "Key (…)=(…)"), and asyncpg quotes a parameter it cannot encode; both reach
    ``str(exc)`` and so any traceback. Drop them (the message, constraint and column
    names stay)."""
    error: BaseException | None = context.original_exception
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if getattr(error, "detail", None) is not None:
            with contextlib.suppress(AttributeError, TypeError):
                error.detail = None  # type: ignore[attr-defined]
        if error.args and isinstance(error.args[0], str) and "query argument" in error.args[0]:
            error.args = (_ARGUMENT_VALUE.sub(r"\1(value hidden)\2", error.args[0]),)
        error = error.__cause__ or error.__context__


def create_sync_engine(url: str | URL, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> Engine:
    """A blocking engine on the same SQLite file (pysqlite), with the same settings.

    The protocol issuer runs its batch transactions on it (see protocols/issuer.py),
    with ``busy_timeout_ms=0`` so that a held lock fails fast instead of blocking.
    """
    url = make_url(url)
    if url.get_backend_name() != "sqlite":
        raise ValueError("create_sync_engine is for SQLite only")
    engine = create_sync_sqlalchemy_engine(
        url.set(drivername="sqlite+pysqlite"), hide_parameters=True
    )
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
    dbapi_connection: Any,
    _record: Any,
    busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    query_only: bool = False,
) -> None:
    # Let SQLAlchemy emit BEGIN itself (see the "begin" listeners).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    if query_only:
        cursor.execute("PRAGMA query_only=1")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    """A writing transaction takes SQLite's write lock at BEGIN: two processes that
    both read first and then try to write would otherwise deadlock into SQLITE_BUSY,
    which no busy timeout can wait out."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(conn: Any) -> None:
    """A reading transaction must not take the write lock: in WAL mode it reads a
    snapshot while writers go on, so a report never holds up the issuing of a number."""
    conn.exec_driver_sql("BEGIN")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    """Sessions that may write (on SQLite each transaction holds the write lock)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def create_read_engine(engine: AsyncEngine) -> AsyncEngine:
    """Where sessions that only read run (reports, lookups, listings, token checks).

    SQLite: an engine of its own on the same file, its connections ``query_only`` (a
    write fails instead of taking the lock) and its transactions deferred (no write
    lock). PostgreSQL: the same engine and connection pool, READ ONLY transactions.
    """
    if not is_sqlite(engine):
        return engine.execution_options(postgresql_readonly=True)
    reader = create_async_engine(engine.url, hide_parameters=True)
    event.listen(
        reader.sync_engine,
        "connect",
        lambda conn, record: _sqlite_pragmas(conn, record, query_only=True),
    )
    event.listen(reader.sync_engine, "begin", _sqlite_begin_deferred)
    return reader


def make_read_sessionmaker(read_engine: AsyncEngine) -> async_sessionmaker[Any]:
    """Sessions on :func:`create_read_engine`'s engine."""
    return async_sessionmaker(read_engine, expire_on_commit=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
