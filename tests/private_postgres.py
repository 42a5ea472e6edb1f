"""A private PostgreSQL cluster for tests that stop their database.

The machine's server (127.0.0.1:5432) is shared by every test and is never stopped;
a test that needs a database going away starts its own cluster with initdb/pg_ctl
(as the ``postgres`` user when run as root) on a free port, in a temporary folder of
its own (pytest's tmp_path is not reachable by that user)::

    with PrivatePostgres() as pg:
        url = pg.url  # postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres
        pg.stop()     # connections refused from now on
        pg.start()    # back, same data

Without initdb (no PostgreSQL server package) the test skips, unless
SAC_IVR_REQUIRE_POSTGRES=1: then it fails.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
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
    def __init__(self) -> None:
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
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            entry = pwd.getpwnam("postgres")
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid}

    def _run(self, *args: str) -> None:
        done = subprocess.run(args, capture_output=True, timeout=60, cwd=self.root, **self._user)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {output}")

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
            "-c fsync=off"
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

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def __exit__(self, *exc: object) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# -- frozen server (tests/test_outage_*.py) --------------------------------------------


def _cluster_pids(pg: PrivatePostgres) -> list[int]:
    """The postmaster (first line of postmaster.pid) and its children (backends)."""
    postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
            pids.append(int(entry.name))
    return pids


def freeze(pg: PrivatePostgres) -> None:
    """SIGSTOP the whole cluster: connections stay open, nothing answers."""
    for pid in _cluster_pids(pg):
        os.kill(pid, signal.SIGSTOP)


def thaw(pg: PrivatePostgres) -> None:
    for pid in _cluster_pids(pg):
        os.kill(pid, signal.SIGCONT)
