"""A private PostgreSQL cluster for tests that stop their database.

The machine's server (127.0.0.1:5432) is shared by every test and is never stopped;
a test that needs a database going away starts its own cluster with initdb/pg_ctl
(as the ``postgres`` user when run as root) on a free port, in a temporary folder of
its own (pytest's tmp_path is not reachable by that user)::

    with PrivatePostgres() as pg:
        url = pg.url  # postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres
        pg.stop()     # connections refused from now on
        pg.start()    # back, same data

A primary with a streaming standby (pg_basebackup -R into a second data folder, on
another port), for failover tests::

    with PrivatePostgres(synchronous_standby="standby1") as primary:
        with primary.standby("standby1") as standby:
            primary.stop(mode="immediate")  # the primary crashes
            standby.promote()               # the standby takes writes

``synchronous_standby`` names the standby whose flush every commit on the primary
waits for (``synchronous_standby_names``, ``synchronous_commit=on``): with it, a
commit the primary acknowledged is on the standby too.

Without initdb (no PostgreSQL server package) the test skips, unless
SAC_IVR_REQUIRE_POSTGRES=1: then it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

REQUIRE = os.environ.get("SAC_IVR_REQUIRE_POSTGRES") == "1"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    def __init__(self, *, synchronous_standby: str | None = None) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            reason = "PostgreSQL server binaries (initdb, pg_ctl) not found"
            if REQUIRE:
                pytest.fail(f"{reason} (SAC_IVR_REQUIRE_POSTGRES=1)")
            pytest.skip(reason)
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="sac-ivr-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self.synchronous_standby = synchronous_standby
        self._extra_options = ""
        if synchronous_standby:
            self._extra_options = (
                f" -c synchronous_standby_names={synchronous_standby}"
                " -c synchronous_commit=on -c wal_level=replica"
            )
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            entry = pwd.getpwnam("postgres")
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid}

    def _run(self, *args: str) -> str:
        done = subprocess.run(args, capture_output=True, timeout=60, cwd=self.root, **self._user)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {output}")
        return done.stdout.decode(errors="replace")

    @property
    def host_port(self) -> str:
        """``127.0.0.1:PORT``, as a ``host=`` of a multi-host URL."""
        return f"127.0.0.1:{self.port}"

    def psql(self, sql: str) -> str:
        """Run one statement with psql; its rows unaligned, ``|``-separated."""
        return self._run(
            str(self.bin / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ).strip()

    def __enter__(self) -> PrivatePostgres:
        if self._user:
            os.chown(self.root, self._user["user"], self._user["group"])
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.start()
        return self

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
            "-c fsync=off" + self._extra_options
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """``mode="immediate"``: no shutdown checkpoint, clients cut at once (a crash)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, WAL sender, checkpointer…)."""
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return []
        found = [postmaster]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                    found.append(int(entry.name))
        return found

    def freeze(self) -> None:
        """SIGSTOP every process of the cluster: its connections stay open and the
        kernel still accepts new ones, but nothing answers (a hung server, or a host
        cut off without a reset). ``thaw()`` undoes it."""
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def running(self) -> bool:
        done = subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            timeout=30,
            cwd=self.root,
            **self._user,
        )
        return done.returncode == 0

    def standby(self, name: str = "standby1") -> PrivateStandby:
        """A streaming standby of this (running) cluster; enter it to create and start it."""
        return PrivateStandby(self, name)

    def wait_streaming(self, name: str, timeout: float = 30.0) -> None:
        """Until standby ``name`` streams from this primary (and, if it is the
        synchronous one, is in sync)."""
        want = "sync" if name == self.synchronous_standby else "async"
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.psql(
                "SELECT state || '/' || sync_state FROM pg_stat_replication"
                f" WHERE application_name = '{name}'"
            )
            if state == f"streaming/{want}":
                return
            time.sleep(0.1)
        raise RuntimeError(f"standby {name} not streaming/{want} in {timeout} s: {state!r}")

    def __exit__(self, *exc: object) -> None:
        try:
            self.thaw()
            if (self.data / "postmaster.pid").exists() and self.running():
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class PrivateStandby(PrivatePostgres):
    """A hot standby made by ``pg_basebackup -R`` from ``primary``, on a port of its
    own; ``promote()`` makes it a primary. It is never a synchronous primary itself:
    once promoted, it commits alone (no standby is left to wait for)."""

    def __init__(self, primary: PrivatePostgres, name: str) -> None:
        super().__init__()
        self.primary = primary
        self.name = name
        # cluster_name is the application_name the standby streams under, which
        # synchronous_standby_names on the primary refers to.
        self._extra_options = f" -c cluster_name={name} -c hot_standby=on"

    def __enter__(self) -> PrivateStandby:
        if self._user:
            os.chown(self.root, self._user["user"], self._user["group"])
        self._run(
            str(self.bin / "pg_basebackup"),
            "-D",
            str(self.data),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            "postgres",
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )
        self.start()
        self.primary.wait_streaming(self.name)
        return self

    def promote(self) -> None:
        """``pg_ctl promote``: returns once the standby accepts writes."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30", "promote")


def multi_host_url(*servers: PrivatePostgres) -> str:
    """The service's database URL listing ``servers`` in order, writes on whichever
    is the primary (``target_session_attrs=read-write``)."""
    hosts = "&".join(f"host={server.host_port}" for server in servers)
    return f"postgresql+asyncpg://postgres@/postgres?{hosts}&target_session_attrs=read-write"


@contextlib.asynccontextmanager
async def primary_with_standby(
    name: str = "standby1",
) -> AsyncIterator[tuple[PrivatePostgres, PrivateStandby]]:
    """A primary with a synchronous streaming standby ``name`` (for async tests: both
    started and removed off the event loop)."""
    primary = PrivatePostgres(synchronous_standby=name)
    await asyncio.to_thread(primary.__enter__)
    try:
        standby = primary.standby(name)
        await asyncio.to_thread(standby.__enter__)
        try:
            yield primary, standby
        finally:
            await asyncio.to_thread(standby.__exit__, None, None, None)
    finally:
        await asyncio.to_thread(primary.__exit__, None, None, None)
