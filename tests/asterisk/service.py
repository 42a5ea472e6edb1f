"""Run the real ``sac-ivr serve`` against a test Asterisk.

The service listens for FastAGI on the port the instance's dialplan calls
(``SAC_AGI_PORT``) and follows AMI as the ``sac-ivr`` user of manager.conf.sample;
its database is a fresh SQLite file and its HTTP port a free one. Use it for one
module at a time (the AGI port is the instance's)::

    with SacIvrService(asterisk) as service:
        call = SipCall(asterisk, ...).start()
        ...
        service.log_text()  # what it logged
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.asterisk.instance import AsteriskInstance, free_port


class ServiceError(RuntimeError):
    pass


@dataclass(frozen=True, repr=False)
class HttpResult:
    """One HTTP answer: status, content type, text and (for JSON) the decoded body."""

    status: int
    content_type: str
    text: str
    body: Any

    def __repr__(self) -> str:
        return f"HttpResult({self.status}, {self.content_type}, {self.text[:300]!r})"


class SacIvrService:
    """``python -m sac_ivr serve`` as a subprocess; ``env`` adds or overrides settings
    (``SAC_IVR_*``). ``agi_port`` and ``database`` (an SQLite file) let several
    instances run side by side on one database (default: the instance's AGI port and
    a fresh file of its own)."""

    def __init__(
        self,
        instance: AsteriskInstance,
        *,
        env: Mapping[str, str] | None = None,
        name: str = "sac-ivr",
        args: tuple[str, ...] = (),
        agi_port: int | None = None,
        database: Path | None = None,
    ) -> None:
        self.instance = instance
        self.work_dir: Path = instance.work_dir / name
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.log_path = self.work_dir / "service.log"
        self._database = database or self.work_dir / "sac-ivr.sqlite3"
        self.env = {
            **os.environ,
            **instance.sac_ivr_env(),
            **({"SAC_IVR_AGI_PORT": str(agi_port)} if agi_port is not None else {}),
            "SAC_IVR_HTTP_HOST": "127.0.0.1",
            "SAC_IVR_HTTP_PORT": str(self.http_port),
            "SAC_IVR_DATABASE_URL": f"sqlite+aiosqlite:///{self._database}",
            "SAC_IVR_LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self.args = args
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def database_path(self) -> Path:
        return self._database

    @property
    def agi_address(self) -> str:
        """``host:port`` of its FastAGI listener, as the dialplan's SAC_AGI_HOSTS lists it."""
        return f"127.0.0.1:{self.env['SAC_IVR_AGI_PORT']}"

    def start(self, timeout: float = 30.0) -> SacIvrService:
        """Start it and wait until its FastAGI port accepts connections."""
        # A restart with the same name appends to the same log: only this run's
        # READY line counts (an earlier one would return before the port is bound).
        offset = self.log_path.stat().st_size if self.log_path.is_file() else 0
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "sac_ivr", "serve", *self.args],
                cwd=self.instance.project_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        port = int(self.env["SAC_IVR_AGI_PORT"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceError(
                    f"sac-ivr serve exited with {self._proc.returncode}; "
                    f"log {self.log_path}:\n{self.log_text()[-3000:]}"
                )
            # the service prints "READY agi=PORT http=PORT" once it listens
            if f"READY agi={port}" in self._log_bytes(offset).decode(errors="replace"):
                return self
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"sac-ivr serve not listening on {port} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL; returns the exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would: no drain, no clean AMI logoff."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def create_token(self, name: str, role: str = "agent", extension: str | None = None) -> str:
        """A bearer token from the real CLI (``sac-ivr token create``) on this database."""
        args = [sys.executable, "-m", "sac_ivr", "token", "create", name, "--role", role]
        if extension:
            args += ["--extension", extension]
        proc = subprocess.run(
            args,
            cwd=self.instance.project_dir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise ServiceError(f"sac-ivr token create failed: {proc.stderr}")
        return proc.stdout.strip().splitlines()[0]

    def get(self, path: str, token: str | None = None, timeout: float = 10.0) -> HttpResult:
        """GET ``path`` from the service's HTTP API (JSON decoded when it is JSON)."""
        request = urllib.request.Request(self.base_url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, ctype, raw = (
                    response.status,
                    response.headers.get_content_type(),
                    response.read(),
                )
        except urllib.error.HTTPError as exc:
            status, ctype, raw = exc.code, exc.headers.get_content_type(), exc.read()
        text = raw.decode("utf-8", "replace")
        return HttpResult(
            status, ctype, text, json.loads(text) if ctype == "application/json" else None
        )

    def _log_bytes(self, offset: int) -> bytes:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def __enter__(self) -> SacIvrService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
