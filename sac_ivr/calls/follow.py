"""Which instance writes an Asterisk server's call log: exactly one at a time.

On PostgreSQL, :class:`PgFollowLock` holds a session-level advisory lock
(``pg_try_advisory_lock`` on a hash of the server's name) on a dedicated connection
of its own (outside the pool). The instance that holds it writes that server's call
log; the others try again every ``ami_follow_retry`` seconds.

* **A killed holder** (kill -9, a crash, a lost machine whose TCP connection is
  reset): PostgreSQL ends its session, the lock is free, another instance takes it
  at its next try (within ``ami_follow_retry``).
* **A frozen holder** (SIGSTOP, a stalled VM): its lock connection is set with
  ``idle_session_timeout = ami_follow_expiry`` (PostgreSQL 14 or later), and the
  holder proves it is alive with a query every ``ami_follow_retry`` seconds; frozen
  longer than the expiry, PostgreSQL ends its session and another instance takes
  over. (A lost machine whose connection is never reset is found the same way: its
  session idles out.) When it wakes up,
  :meth:`PgFollowLock.may_write` says no at once: its last proof is older than the
  expiry by its own monotonic clock, so it writes nothing until its next check,
  which finds the session gone and gives the server up.
* **The database unreachable** (stopped, restarting): the holder cannot know
  whether it still holds the lock; it keeps its AMI link and its queued events
  (``may_write`` waits), and tries to take the lock again as soon as the database
  answers, more often than the others (``RETRY_UNSURE_S``). It writes its queue
  when it gets the lock again; if another instance got it first, it drops its
  queue (that instance reconciles).

On SQLite there is one sac-ivr process (:class:`SoleFollower`): it always follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import time
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sac_ivr.db.engine import create_engine

log = logging.getLogger(__name__)


class Role(enum.Enum):
    FOLLOWER = "follower"  # holds the lock: writes the call log
    STANDBY = "standby"  # another instance holds it
    UNSURE = "unsure"  # held it, lost touch with the database: waits


class FollowLock(Protocol):
    role: Role

    async def try_once(self) -> None: ...

    def start(self) -> None: ...

    async def may_write(self) -> bool: ...

    async def close(self) -> None: ...


def lock_key(server: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (the same in every process)."""
    digest = hashlib.sha256(f"sac-ivr:ami:{server}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SoleFollower:
    """SQLite: the only process; always the follower."""

    role = Role.FOLLOWER

    def __init__(self, on_change: Any = None) -> None:
        self._on_change = on_change

    async def try_once(self) -> None:
        if self._on_change is not None:
            await self._on_change(Role.FOLLOWER)

    def start(self) -> None:
        return None

    async def may_write(self) -> bool:
        return True

    async def close(self) -> None:
        return None


class PgFollowLock:
    """The PostgreSQL advisory lock of one server; see the module docstring.

    ``on_change(role)`` (async) is awaited whenever the role changes, before the
    lock is used: becoming the follower, it reconciles before writing.
    """

    RETRY_UNSURE_S = 0.2

    def __init__(
        self,
        database_url: str,
        server: str,
        *,
        retry_s: float = 1.0,
        expiry_s: float = 5.0,
        on_change: Any = None,
    ) -> None:
        self.server = server
        self.key = lock_key(server)
        self.retry_s = retry_s
        self.expiry_s = max(expiry_s, 2 * retry_s)
        self.role = Role.STANDBY
        self._on_change = on_change
        self._database_url = database_url
        self._engine: AsyncEngine | None = None  # made when first used (web process)
        self._conn: AsyncConnection | None = None
        self._proved_at = 0.0  # monotonic time of the last proof that we hold the lock
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._warned_old = False

    # -- the writer's fence
    async def may_write(self) -> bool:
        """True when this instance holds the lock (proved within the expiry); False
        when another does; while unsure, waits until it knows."""
        while True:
            if self.role is Role.FOLLOWER:
                if time.monotonic() - self._proved_at < self.expiry_s:
                    return True
                self._set_role_nowait(Role.UNSURE)  # woke up from a freeze: check first
            elif self.role is Role.STANDBY:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.retry_s)

    # -- the loop
    async def try_once(self) -> None:
        """One try now (at start, so that the role is known before AMI connects)."""
        await self._step()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"ami-follow-{self.server}"
            )

    async def run(self) -> None:
        """Try, hold, prove, give up; until cancelled."""
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("AMI follower lock of server %s: unexpected failure", self.server)
                await self._drop_connection()
                if self.role is Role.FOLLOWER:
                    await self._set_role(Role.UNSURE)
            await asyncio.sleep(self.RETRY_UNSURE_S if self.role is Role.UNSURE else self.retry_s)

    async def _step(self) -> None:
        try:
            if self.role is Role.FOLLOWER:
                await self._query("SELECT 1")
                self._proved_at = time.monotonic()
                return
            got = await self._query("SELECT pg_try_advisory_lock(:key)", key=self.key)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            await self._drop_connection()
            if self.role is Role.FOLLOWER:
                log.warning(
                    "AMI server %s: lost the database session holding the follower lock "
                    "(%s); keeping the AMI link and the queued events until it is back",
                    self.server,
                    type(exc).__name__,
                )
                await self._set_role(Role.UNSURE)
            return
        if got:
            self._proved_at = time.monotonic()
            if self.role is not Role.FOLLOWER:
                log.info("AMI server %s: this instance now writes its call log", self.server)
                await self._set_role(Role.FOLLOWER)
        elif self.role is Role.UNSURE:
            log.warning("AMI server %s: another instance took over its call log", self.server)
            await self._set_role(Role.STANDBY)

    async def _query(self, sql: str, **params: Any) -> Any:
        async def run() -> Any:
            if self._conn is None:
                if self._engine is None:
                    # One connection, never returned to the pool while it may hold
                    # the lock (dropped with invalidate()).
                    self._engine = create_engine(
                        self._database_url, pool_size=1, max_overflow=0, pool_pre_ping=False
                    )
                conn = await self._engine.connect()
                try:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    expiry_ms = int(self.expiry_s * 1000)
                    await conn.execute(
                        text(f"SET idle_in_transaction_session_timeout = {expiry_ms}")
                    )
                    version = await conn.scalar(text("SHOW server_version_num"))
                    if int(version) >= 140000:  # idle_session_timeout is PostgreSQL 14's
                        await conn.execute(text(f"SET idle_session_timeout = {expiry_ms}"))
                    elif not self._warned_old:
                        self._warned_old = True
                        log.warning(
                            "PostgreSQL before 14: a frozen AMI follower keeps its lock "
                            "until it is killed (no idle_session_timeout)"
                        )
                except BaseException:
                    await conn.invalidate()
                    await conn.close()
                    raise
                self._conn = conn
            return (await self._conn.execute(text(sql), params)).scalar()

        return await asyncio.wait_for(run(), self.expiry_s)

    async def _drop_connection(self) -> None:
        """Close the lock's connection for real (never back to a pool: the lock would
        stay held)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    def _set_role_nowait(self, role: Role) -> None:
        self.role = role
        self._changed.set()

    async def _set_role(self, role: Role) -> None:
        self._set_role_nowait(role)
        if self._on_change is not None:
            await self._on_change(role)

    async def close(self) -> None:
        """Give the lock up (closing its session) and stop trying."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop_connection()
        self.role = Role.STANDBY
        self._changed.set()
        if self._engine is not None:
            await self._engine.dispose()
