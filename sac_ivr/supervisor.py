"""``sac-ivr serve``: a supervisor and two processes, so that no HTTP client, report
or background job can delay the issuing of a number or the first prompt.

::

    sac-ivr serve (supervisor: migrations, listening sockets, restarts, signals)
      ├── call process  python -m sac_ivr.supervisor --role call
      │     FastAGI server, protocol issuer, AGI routes: nothing else
      └── web process   python -m sac_ivr.supervisor --role web
            HTTP API and panels, AMI link (call log, live state), outbox worker

The supervisor runs the migrations, then binds both listening sockets itself: the
ports are known before any child starts (port 0 works) and stay open while a child
restarts; the kernel's accept queue holds Asterisk's connections meanwhile. Each
child is an ordinary Python process started with ``subprocess`` and given, as
inherited file descriptors: its listening socket, a pipe with the settings as JSON
(no secret on a command line), a pipe to say it is ready, and its end of the call
events channel (:mod:`sac_ivr.bridge`: outbox wake-ups and live events, from the call
process to the web process; the supervisor keeps both ends so that either child may
restart).

- A child that dies is started again after 0.5 s, doubling up to 30 s while it keeps
  dying within 10 s of its start (logged each time). A child that dies before it ever
  served stops the service (a start-up error is not cured by retrying).
- SIGTERM/SIGINT: the call process stops accepting and lets the calls in progress
  finish (``runner.DRAIN_SECONDS``); then the web process stops (it goes on sending
  the notices those last calls queue); then the supervisor exits. A second signal
  kills both at once.
- Each child asks the kernel to SIGKILL it when the supervisor dies
  (``PR_SET_PDEATHSIG``): a ``kill -9`` of the supervisor leaves nothing behind.
- ``READY agi=<port> http=<port>`` is printed on stdout once both children serve.

The children raise their open file limit to the hard limit. The supervisor has no
event loop: it waits on its children's pipes and a signal wake-up pipe.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import errno
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sac_ivr.config import Settings

log = logging.getLogger("sac_ivr.supervisor")

RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0
# A child that ran this long before dying starts again after RESTART_MIN_S.
STABLE_AFTER_S = 10.0
# After the call process's drain (DRAIN_SECONDS), how long before it is killed.
CALL_STOP_GRACE_S = 5.0
WEB_STOP_TIMEOUT_S = 15.0
PR_SET_PDEATHSIG = 1
# How long to wait for a listening port still held by a dying earlier instance.
BIND_WAIT_S = 5.0
READY_BYTE = b"R"


# ------------------------------------------------------------------ the supervisor
@dataclasses.dataclass
class Child:
    role: str
    listen: socket.socket
    events: socket.socket
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    status: int | None = None  # read end of the ready pipe
    ready: bool = False
    served: bool = False  # was ready at least once
    backoff: float = RESTART_MIN_S  # the wait before the next quick restart
    restart_at: float | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    def __init__(self, settings: Settings, agi: socket.socket, http: socket.socket) -> None:
        from sac_ivr.bridge import make_channel
        from sac_ivr.runner import CALL_ROLE, WEB_ROLE

        self.settings = settings
        self.agi = agi
        self.http = http
        call_end, web_end = make_channel()
        self.children = {
            CALL_ROLE: Child(CALL_ROLE, agi, call_end),
            WEB_ROLE: Child(WEB_ROLE, http, web_end),
        }
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.signals = 0
        self.announced = False
        self.exit_code = 0

    # -- children
    def spawn(self, child: Child) -> None:
        settings_r, settings_w = os.pipe()
        status_r, status_w = os.pipe()
        fds = (settings_r, status_w, child.listen.fileno(), child.events.fileno())
        argv = [
            sys.executable,
            "-m",
            "sac_ivr.supervisor",
            "--role",
            child.role,
            "--parent",
            str(os.getpid()),
            "--settings-fd",
            str(settings_r),
            "--status-fd",
            str(status_w),
            "--listen-fd",
            str(child.listen.fileno()),
            "--events-fd",
            str(child.events.fileno()),
        ]
        try:
            child.proc = subprocess.Popen(
                argv,
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
                stdout=sys.stderr.fileno(),  # stdout is the READY line's alone
                close_fds=True,
            )
        finally:
            os.close(settings_r)
            os.close(status_w)
        with os.fdopen(settings_w, "wb") as pipe:
            pipe.write(json.dumps(dataclasses.asdict(self.settings)).encode())
        child.started_at = time.monotonic()
        child.status = status_r
        child.ready = False
        child.restart_at = None
        self.selector.register(status_r, selectors.EVENT_READ, child)
        log.info("%s process started (pid %d)", child.role, child.proc.pid)

    def _close_status(self, child: Child) -> None:
        if child.status is not None:
            self.selector.unregister(child.status)
            os.close(child.status)
            child.status = None

    def _on_status(self, child: Child) -> None:
        assert child.status is not None
        data = os.read(child.status, 64)
        if not data:  # the child closed it (it exited): reaped in check_children
            self._close_status(child)
            return
        if READY_BYTE in data and not child.ready:
            child.ready = True
            if child.served:
                log.info("%s process serving again", child.role)
            child.served = True
            if not self.announced and all(c.ready for c in self.children.values()):
                self.announced = True
                print(
                    f"READY agi={self.agi.getsockname()[1]} http={self.http.getsockname()[1]}",
                    flush=True,
                )

    def check_children(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.proc is not None and child.proc.poll() is not None:
                pid, code = child.proc.pid, child.proc.returncode
                self._close_status(child)
                child.proc = None
                child.ready = False
                if self.stopping:
                    continue
                if not child.served:
                    log.error(
                        "%s process could not start (%s); stopping",
                        child.role,
                        _describe_exit(code),
                    )
                    self.exit_code = 1
                    self.begin_stop()
                    continue
                uptime = now - child.started_at
                delay = RESTART_MIN_S if uptime >= STABLE_AFTER_S else child.backoff
                child.backoff = min(RESTART_MAX_S, delay * 2)  # if it dies again soon
                child.restart_at = now + delay
                log.error(
                    "%s process (pid %d) died (%s) after %.1f s; restarting in %.1f s",
                    child.role,
                    pid,
                    _describe_exit(code),
                    uptime,
                    delay,
                )
            if (
                not self.stopping
                and child.proc is None
                and child.restart_at is not None
                and now >= child.restart_at
            ):
                self.spawn(child)

    # -- signals
    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.signals += 1

    def begin_stop(self) -> None:
        self.stopping = True
        for child in self.children.values():
            child.restart_at = None

    # -- main loop
    def run(self) -> int:
        from sac_ivr.runner import CALL_ROLE, WEB_ROLE

        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)
        self.selector.register(wake_r, selectors.EVENT_READ, None)
        try:
            self.spawn(self.children[CALL_ROLE])
            self.spawn(self.children[WEB_ROLE])
            while not self.stopping:
                self._wait(1.0)
                if self.signals:
                    log.info("stopping")
                    self.begin_stop()
                    break
                self.check_children()
            self.agi.close()  # stop accepting: the children's copies close as they stop
            self.http.close()
            self._stop_child(self.children[CALL_ROLE], self._call_stop_timeout())
            self._stop_child(self.children[WEB_ROLE], WEB_STOP_TIMEOUT_S)
        finally:
            for child in self.children.values():
                if child.alive:
                    assert child.proc is not None
                    child.proc.kill()
            signal.set_wakeup_fd(-1)
            wake_r.close()
            wake_w.close()
        log.info("stopped")
        return self.exit_code

    def _call_stop_timeout(self) -> float:
        from sac_ivr.runner import DRAIN_SECONDS

        return DRAIN_SECONDS + CALL_STOP_GRACE_S

    def _wait(self, timeout: float) -> None:
        restarts = [c.restart_at for c in self.children.values() if c.restart_at is not None]
        if restarts:
            timeout = max(0.0, min(timeout, min(restarts) - time.monotonic()))
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                try:
                    while key.fileobj.recv(512):  # type: ignore[union-attr]
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
            else:
                self._on_status(key.data)

    def _stop_child(self, child: Child, timeout: float) -> None:
        """SIGTERM, wait ``timeout`` (a second signal to the supervisor: no wait),
        then SIGKILL."""
        if not child.alive:
            return
        assert child.proc is not None
        signals = self.signals
        child.proc.terminate()
        deadline = time.monotonic() + timeout
        while child.proc.poll() is None:
            if self.signals > max(signals, 1) or time.monotonic() >= deadline:
                log.warning("%s process did not stop in time: killed", child.role)
                child.proc.kill()
                child.proc.wait()
                break
            self._wait(min(0.2, max(0.0, deadline - time.monotonic())))
        self._close_status(child)


def _bind(host: str, port: int) -> socket.socket:
    """bind_listener, waiting up to BIND_WAIT_S for a port still held: the children
    of a supervisor killed a moment ago are dying (PR_SET_PDEATHSIG) but may still
    hold it."""
    from sac_ivr.runner import bind_listener

    deadline = time.monotonic() + BIND_WAIT_S
    while True:
        try:
            return bind_listener(host, port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or not port or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def _migrate(database_url: str) -> None:
    """Bring the schema to head. On PostgreSQL, a database that does not answer does
    not stop the start: an instance restarted during an outage serves calls from its
    outage reserve (README, "Numbers through a database outage"); the schema was
    brought up by whichever instance started while it answered."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import InterfaceError, OperationalError

    from sac_ivr.db.migrate import upgrade

    try:
        upgrade(database_url)
    except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
        if make_url(database_url).get_backend_name() != "postgresql":
            raise
        log.warning(
            "database unreachable at start (%s): starting without migrating",
            type(exc).__name__,
        )


def serve(settings: Settings, migrate: bool = True) -> int:
    """``sac-ivr serve``: migrate, bind, supervise until SIGTERM/SIGINT."""
    if migrate:
        _migrate(settings.database_url)
    agi = _bind(settings.agi_host, settings.agi_port)
    try:
        http = _bind(settings.http_host, settings.http_port)
    except OSError:
        agi.close()
        raise
    # The children get the ports really bound (port 0: the kernel's choice).
    settings = dataclasses.replace(
        settings, agi_port=agi.getsockname()[1], http_port=http.getsockname()[1]
    )
    log.info(
        "sac-ivr supervisor: FastAGI on %s:%d, HTTP on %s:%d",
        settings.agi_host,
        settings.agi_port,
        settings.http_host,
        settings.http_port,
    )
    return Supervisor(settings, agi, http).run()


# ------------------------------------------------------------------ a child
def _die_with_parent(parent: int) -> None:
    """PR_SET_PDEATHSIG: SIGKILL when the supervisor dies, even by kill -9."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the prctl
        os._exit(1)


def child_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="sac_ivr.supervisor")
    parser.add_argument("--role", required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--settings-fd", type=int, required=True)
    parser.add_argument("--status-fd", type=int, required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--events-fd", type=int, required=True)
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    # Ctrl-C in a terminal reaches the whole process group: the supervisor alone
    # decides the order of the stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    import asyncio

    from sac_ivr.config import Settings
    from sac_ivr.features import check_settings
    from sac_ivr.logs import setup_logging
    from sac_ivr.runner import run_role

    with os.fdopen(args.settings_fd, "rb") as pipe:
        values = json.loads(pipe.read())
    settings = Settings(**values)
    check_settings(settings)
    setup_logging(settings.log_level, role=args.role)
    listen = socket.socket(fileno=args.listen_fd)
    events = socket.socket(fileno=args.events_fd)
    status = args.status_fd

    def ready() -> None:
        os.write(status, READY_BYTE)

    try:
        asyncio.run(run_role(args.role, settings, listen, events, ready))
    except Exception:
        logging.getLogger("sac_ivr.runner").exception("%s process failed", args.role)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1:]))
