"""Logging set-up: one format for every process, and floods logged once with a count.

A flood must not become one log line per event: in the issue's HTTP flood the log
grew by 616,507 tracebacks (274 MB in 45 s), and every dropped FastAGI connection
wrote a WARNING. :class:`DedupFilter`, installed on the output handler, lets the
first record of a kind through (kind = same logger, level and message template,
whatever the arguments), counts the next ones, and writes one summary per window::

    ... WARNING [call] sac_ivr.connections.agi: FastAGI connection from 10.0.0.9 refused: ...
    ... WARNING [call] sac_ivr.connections.agi: FastAGI connection from 10.0.0.7 refused: ...
        [repeated 4211 more times in the last 60 s]

What is deduplicated: WARNING and ERROR records of every logger (a repeated error is
the same error), and records of any level from the connection loggers (aiohttp,
asyncio, ``sac_ivr.connections.*``: dropped, refused and timed-out connections).
INFO lines of ordinary work (one per call) and CRITICAL lines always pass.

Also here: an exception given as a log argument whose text is empty (``TimeoutError()``
prints nothing) is written as its kind, so a database timeout no longer logs an
empty reason.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

# Loggers whose every record is deduplicated, whatever its level (prefixes).
CONNECTION_LOGGERS = ("aiohttp", "asyncio", "sac_ivr.connections")
# Dropped, refused and timed-out connections of each listener.
AGI_CONNECTIONS = "sac_ivr.connections.agi"
HTTP_CONNECTIONS = "sac_ivr.connections.http"

WINDOW_S = 60.0
FLUSH_INTERVAL_S = 5.0
# Kinds tracked at once; past this, records of new kinds pass undeduplicated (kinds
# are message templates, i.e. lines of code: this is never reached in practice).
MAX_KINDS = 2000
SUMMARY = "%s [repeated %d more times in the last %.0f s]"
_SUMMARY_ATTR = "_sac_ivr_dedup_summary"

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ROLE_FORMAT = "%(asctime)s %(levelname)s [{role}] %(name)s: %(message)s"


def describe(exc: BaseException) -> str:
    """An exception as text for a log line: its message, or its kind when empty."""
    text = str(exc)
    return text if text else type(exc).__name__


def name_exception_args(record: logging.LogRecord) -> None:
    """Exceptions among the record's arguments become their text (their kind when
    the text is empty); this also drops the reference to their traceback."""
    args = record.args
    if isinstance(args, tuple) and any(isinstance(a, BaseException) for a in args):
        record.args = tuple(describe(a) if isinstance(a, BaseException) else a for a in args)


@dataclass
class _Kind:
    since: float
    count: int = 0  # records held back in this window
    last_message: str = ""
    last: logging.LogRecord | None = None


class DedupFilter(logging.Filter):
    """Handler filter: the first record of a kind passes, the next ones in the same
    window are counted and summarised (see the module docstring).

    ``flush()`` writes the summaries of windows that ended; :func:`setup_logging` calls
    it every few seconds from a daemon thread and at exit.
    """

    def __init__(
        self, window: float = WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._kinds: dict[tuple[str, int, str], _Kind] = {}
        self._lock = threading.Lock()
        self._handlers: list[logging.Handler] = []

    def install(self, handler: logging.Handler) -> None:
        handler.addFilter(self)
        self._handlers.append(handler)

    @staticmethod
    def applies(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL:
            return False
        if record.levelno >= logging.WARNING:
            return True
        return record.name.startswith(CONNECTION_LOGGERS)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY_ATTR, False):
            return True
        name_exception_args(record)
        if not self.applies(record):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        summary: logging.LogRecord | None = None
        with self._lock:
            kind = self._kinds.get(key)
            if kind is not None and now - kind.since < self.window:
                kind.count += 1
                kind.last = record
                return False
            if kind is not None and kind.count:
                summary = self._summary(kind, now)
            if kind is None and len(self._kinds) >= MAX_KINDS:
                self._forget_quiet(now)
                if len(self._kinds) >= MAX_KINDS:
                    return True
            self._kinds[key] = _Kind(since=now)
        if summary is not None:
            self._emit(summary)
        return True

    def flush(self) -> None:
        """Write the summary of every window that ended with records held back."""
        now = self.clock()
        summaries = []
        with self._lock:
            for key, kind in list(self._kinds.items()):
                if now - kind.since < self.window:
                    continue
                if kind.count:
                    summaries.append(self._summary(kind, now))
                    # Still flooding: the next window only counts (one line a window).
                    self._kinds[key] = _Kind(since=now)
                else:
                    del self._kinds[key]  # quiet: the next one is logged in full
        for summary in summaries:
            self._emit(summary)

    def flush_all(self) -> None:
        """Write every pending summary now (at exit)."""
        now = self.clock()
        with self._lock:
            summaries = [self._summary(k, now) for k in self._kinds.values() if k.count]
            self._kinds.clear()
        for summary in summaries:
            self._emit(summary)

    def _forget_quiet(self, now: float) -> None:
        for key, kind in list(self._kinds.items()):
            if not kind.count and now - kind.since >= self.window:
                del self._kinds[key]

    def _summary(self, kind: _Kind, now: float) -> logging.LogRecord:
        last = kind.last
        assert last is not None
        try:
            message = last.getMessage()
        except Exception:
            message = str(last.msg)
        record = logging.LogRecord(
            last.name,
            last.levelno,
            last.pathname,
            last.lineno,
            SUMMARY,
            (message, kind.count, now - kind.since),
            None,
            last.funcName,
        )
        setattr(record, _SUMMARY_ATTR, True)
        return record

    def _emit(self, record: logging.LogRecord) -> None:
        for handler in self._handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


class _Flusher(threading.Thread):
    def __init__(self, dedup: DedupFilter, interval: float) -> None:
        super().__init__(name="log-dedup-flush", daemon=True)
        self.dedup = dedup
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.dedup.flush()


_current: tuple[DedupFilter, _Flusher] | None = None


def setup_logging(
    level: str, role: str | None = None, stream: IO[str] | None = None, **filter_kw: Any
) -> DedupFilter:
    """Log to ``stream`` (stderr) at ``level`` through a :class:`DedupFilter`.

    ``role`` (``supervisor``, ``call``, ``web``) tags every line with the process that
    wrote it. Replaces any earlier set-up of this process.
    """
    global _current
    if _current is not None:
        _current[1].stopped.set()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(ROLE_FORMAT.format(role=role) if role else FORMAT))
    dedup = DedupFilter(**filter_kw)
    dedup.install(handler)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    flusher = _Flusher(dedup, min(FLUSH_INTERVAL_S, dedup.window / 4))
    flusher.start()
    if _current is None:
        atexit.register(_flush_at_exit)
    _current = (dedup, flusher)
    return dedup


def _flush_at_exit() -> None:
    if _current is not None:
        _current[0].flush_all()
