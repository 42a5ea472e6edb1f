"""The real ``sac-ivr serve`` as a subprocess on a fresh SQLite file, without Asterisk.

``ServeProcess(tmp_path, env={...}).start()`` waits for its ``READY agi=… http=…``
line; ``children()`` finds its call and web processes (by their command line in
/proc); ``log_text()`` is what all three processes wrote.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def raise_fd_limit() -> None:
    """Floods need more than the usual 1024 descriptors in the test process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pid_alive(pid: int) -> bool:
    """Running: any of its threads not yet a zombie. A zombie waiting to be reaped
    counts as gone, but only once every thread is one: a killed multi-threaded process
    shows its main thread as a zombie while the other threads still hold its files
    (its listening sockets among them)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
            return True
    return False


class ServeProcess:
    def __init__(
        self, work_dir: Path, env: Mapping[str, str] | None = None, args: Sequence[str] = ()
    ) -> None:
        self.work_dir = work_dir
        self.args = list(args)  # more ``sac-ivr serve`` arguments (e.g. --no-migrate)
        work_dir.mkdir(parents=True, exist_ok=True)
        self.database_path = work_dir / "sac-ivr.sqlite3"
        self.log_path = work_dir / "service.log"
        self.env = {
            **os.environ,
            "SAC_IVR_DATABASE_URL": f"sqlite+aiosqlite:///{self.database_path}",
            "SAC_IVR_AGI_PORT": "0",
            "SAC_IVR_HTTP_PORT": "0",
            "SAC_IVR_LOG_LEVEL": "INFO",
            # PostgreSQL runs keep their outage journal here, not in the shared var/.
            "SAC_IVR_PROTOCOL_JOURNAL_PATH": str(work_dir / "protocol-journal.sqlite3"),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.agi_port = 0
        self.http_port = 0

    def start(self, timeout: float = 60.0) -> ServeProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sac_ivr", "serve", *self.args],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_text().splitlines():
                if line.startswith("READY "):
                    fields = dict(part.split("=") for part in line.split()[1:])
                    self.agi_port, self.http_port = int(fields["agi"]), int(fields["http"])
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"sac-ivr serve exited:\n{self.log_text()[-3000:]}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"sac-ivr serve not ready in {timeout} s:\n{self.log_text()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def children(self) -> dict[str, int]:
        """role -> pid of the supervisor's live children."""
        found: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--parent" in argv and argv[argv.index(b"--parent") + 1] == str(self.pid).encode():
                if b"--role" in argv and pid_alive(int(entry.name)):
                    found[argv[argv.index(b"--role") + 1].decode()] = int(entry.name)
        return found

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the graceful stop), then SIGKILL; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def wait_log(self, text: str, timeout: float = 30.0, after: int = 0) -> None:
        """Wait until ``text`` appears in the log past offset ``after`` (bounds a wait;
        not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text()[after:]:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{text!r} not logged in {timeout} s:\n{self.log_text()[-3000:]}"
                )
            time.sleep(0.05)

    async def await_log(self, text: str, timeout: float = 30.0, after: int = 0) -> None:
        """``wait_log`` that leaves the event loop running meanwhile."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text()[after:]:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{text!r} not logged in {timeout} s:\n{self.log_text()[-3000:]}"
                )
            await asyncio.sleep(0.05)

    def log_size(self) -> int:
        return len(self.log_text())
