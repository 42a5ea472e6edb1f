"""The outage reserve: numbers an instance may issue while PostgreSQL is unreachable.

Each instance keeps, per counter key (a day for the date formats, ``global`` for the
sequence format), blocks of sequence values reserved ahead from the database through
the normal counter bump, for today AND tomorrow (local time): a block is the
database's answer to "add N to this counter", so no other instance and no normal
issue can ever get a value of it. Midnight needs no database.

The journal is a local SQLite file (stdlib ``sqlite3``, WAL, ``synchronous=FULL``).
It holds the blocks (with the next value not yet used) and every protocol issued from
them (number, call facts, issued_at, issue_date) until it is replayed into the
database. SQLite rather than an append-only file of our own: taking numbers from a
block and recording the protocols that got them is one atomic, fsynced transaction
(the number is returned only after the commit), a torn write is rolled back by SQLite
instead of by code of ours, "the entries not yet replayed" is an indexed query, and
two processes that happen to share a journal file still never take the same value
(its write lock serialises them).

An instance killed and restarted during an outage opens the same journal and goes on
after the last value it journaled; a block reserved in the database but not yet
journaled when the process died is simply never used (a gap, see the README).

The journal remembers which database its blocks came from (the URL without its
password). Pointed at another database, it starts again if everything was replayed,
and refuses to serve (logged) if protocols are still waiting for their database.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sac_ivr.db.engine import make_private

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    key TEXT NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    next INTEGER NOT NULL,
    reserved_at TEXT NOT NULL,
    PRIMARY KEY (key, first)
);
CREATE TABLE IF NOT EXISTS issued (
    number TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    issued_at TEXT NOT NULL,
    issue_date TEXT NOT NULL,
    caller_number TEXT,
    caller_name TEXT,
    called_number TEXT,
    uniqueid TEXT,
    linkedid TEXT,
    channel TEXT,
    replayed_at TEXT
);
CREATE INDEX IF NOT EXISTS issued_pending ON issued (number) WHERE replayed_at IS NULL;
CREATE INDEX IF NOT EXISTS issued_call ON issued (linkedid);
"""

CALL_FIELDS = ("caller_number", "caller_name", "called_number", "uniqueid", "linkedid", "channel")


@dataclass(frozen=True)
class Taken:
    """A value taken from a block: the caller renders and journals it."""

    key: str
    sequence: int


@dataclass(frozen=True)
class JournalEntry:
    number: str
    issued_at: datetime
    issue_date: date
    call: dict[str, str | None]


class JournalMismatch(RuntimeError):
    """The journal holds protocols for another database: it cannot serve this one."""


class Journal:
    """The local journal file. Synchronous and short: each method is one transaction
    (a commit is one fsync), called from the event loop by the issuer."""

    def __init__(self, path: str | Path, database: str) -> None:
        self.path = Path(path)
        self.database = database
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.mismatch = False

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            make_private(str(self.path))  # call facts are personal data: 0600
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            self._db = db
            self._check_database(db)
        return self._db

    def _check_database(self, db: sqlite3.Connection) -> None:
        with _transaction(db):
            row = db.execute("SELECT value FROM meta WHERE name = 'database'").fetchone()
            if row is None or row[0] == self.database:
                db.execute(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES ('database', ?)",
                    (self.database,),
                )
                return
            pending = db.execute("SELECT count(*) FROM issued WHERE replayed_at IS NULL")
            if pending.fetchone()[0]:
                self.mismatch = True
                log.error(
                    "protocol journal %s holds protocols not yet stored in another "
                    "database: the outage reserve is off until they are (see README)",
                    self.path,
                )
                return
            log.warning(
                "protocol journal %s was for another database: starting it again", self.path
            )
            db.execute("DELETE FROM blocks")
            db.execute("DELETE FROM issued")
            db.execute(
                "UPDATE meta SET value = ? WHERE name = 'database'",
                (self.database,),
            )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- blocks
    def remaining(self, key: str) -> int:
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT coalesce(sum(last - next + 1), 0) FROM blocks "
                    "WHERE key = ? AND next <= last",
                    (key,),
                )
                .fetchone()
            )
        return int(row[0])

    def add_block(self, key: str, first: int, last: int, at: datetime) -> None:
        with self._lock:
            db = self._conn()
            with _transaction(db):
                db.execute(
                    "INSERT INTO blocks (key, first, last, next, reserved_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (key, first, last, first, at.isoformat()),
                )

    def drop_blocks_before(self, oldest_key: str, prefix: str = "day:") -> None:
        """Forget the blocks of past days (their unused values stay gaps)."""
        with self._lock:
            db = self._conn()
            with _transaction(db):
                db.execute(
                    "DELETE FROM blocks WHERE key LIKE ? AND key < ?", (prefix + "%", oldest_key)
                )

    def take(self, wanted: Sequence[str], entries: Any) -> list[Taken | None]:
        """Take one value per key in ``wanted`` (None where the reserve ran out), call
        ``entries(taken)`` for the rows to journal and journal them, all in one
        transaction: the values are used once the commit (fsync) returned."""
        with self._lock:
            db = self._conn()
            if self.mismatch:
                return [None] * len(wanted)
            with _transaction(db):
                taken: list[Taken | None] = []
                for key in wanted:
                    row = db.execute(
                        "SELECT first, next FROM blocks WHERE key = ? AND next <= last "
                        "ORDER BY first LIMIT 1",
                        (key,),
                    ).fetchone()
                    if row is None:
                        taken.append(None)
                        continue
                    db.execute(
                        "UPDATE blocks SET next = next + 1 WHERE key = ? AND first = ?",
                        (key, row[0]),
                    )
                    taken.append(Taken(key=key, sequence=int(row[1])))
                rows = entries(taken)
                db.executemany(
                    "INSERT INTO issued (number, key, sequence, issued_at, issue_date, "
                    "caller_number, caller_name, called_number, uniqueid, linkedid, channel) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            return taken

    # -- replay
    def pending(self, limit: int) -> list[JournalEntry]:
        with self._lock:
            db = self._conn()
            if self.mismatch:
                return []
            rows = db.execute(
                "SELECT number, issued_at, issue_date, caller_number, caller_name, "
                "called_number, uniqueid, linkedid, channel FROM issued "
                "WHERE replayed_at IS NULL ORDER BY issued_at, number LIMIT ?",
                (limit,),
            ).fetchall()
        return [_entry(row) for row in rows]

    def pending_count(self) -> int:
        with self._lock:
            db = self._conn()
            if self.mismatch:
                return 0
            row = db.execute("SELECT count(*) FROM issued WHERE replayed_at IS NULL").fetchone()
        return int(row[0])

    def mark_replayed(self, numbers: Sequence[str], at: datetime) -> None:
        with self._lock:
            db = self._conn()
            with _transaction(db):
                db.executemany(
                    "UPDATE issued SET replayed_at = ? WHERE number = ?",
                    [(at.isoformat(), number) for number in numbers],
                )

    def drop_replayed_before(self, at: datetime) -> None:
        with self._lock:
            db = self._conn()
            with _transaction(db):
                db.execute(
                    "DELETE FROM issued WHERE replayed_at IS NOT NULL AND replayed_at < ?",
                    (at.isoformat(),),
                )

    def find_call(
        self, linkedid: str, uniqueid: str | None, channel: str | None
    ) -> JournalEntry | None:
        """The protocol journaled for this very call (the dialplan's retry)."""
        with self._lock:
            db = self._conn()
            row = db.execute(
                "SELECT number, issued_at, issue_date, caller_number, caller_name, "
                "called_number, uniqueid, linkedid, channel FROM issued "
                "WHERE linkedid = ? AND uniqueid IS ? AND channel IS ? ORDER BY issued_at LIMIT 1",
                (linkedid, uniqueid, channel),
            ).fetchone()
        return _entry(row) if row is not None else None


def _entry(row: Sequence[Any]) -> JournalEntry:
    return JournalEntry(
        number=row[0],
        issued_at=datetime.fromisoformat(row[1]),
        issue_date=date.fromisoformat(row[2]),
        call=dict(zip(CALL_FIELDS, row[3:9], strict=True)),
    )


class _transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error:  # disk full, I/O error: leave no transaction open
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
