"""What retention removes, and removing it.

- Recordings (files under ``recordings_dir``) last modified more than
  ``retention_recording_days`` ago are deleted (Decreto 11.034 art. 12 §3: kept at
  least 90 days) — except those of a request still open: a file whose name contains
  the number, uniqueid or linkedid of a request not yet answered is kept. Name
  recordings with ``${UNIQUEID}`` or ``${SAC_PROTOCOL}`` (MixMonitor) for that.
- Records answered more than ``retention_record_days`` ago (art. 12 §5: kept 2 years
  from the resolution) are anonymised: caller and customer data, notes and the texts
  of their events are erased, their notification outbox rows deleted; the number,
  dates, subject, department, agent and statuses stay for statistics. Requests not
  yet answered are never touched; their calls in the call log lose the caller's
  number and name, as do calls without a protocol older than the same period.
  Delivered history requests older than the same period lose their phone, document
  and e-mail. A deleted recording is unlinked from its call (``recording_file``).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select, update

from sac_ivr.calls.tables import CallLog
from sac_ivr.core import Core
from sac_ivr.db.base import utcnow
from sac_ivr.history.tables import HistoryRequest
from sac_ivr.lifecycle.statuses import ANSWERED_STATUSES, PENDING_STATUSES
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.protocols.tables import Protocol, ProtocolEvent

PERSONAL_COLUMNS = (
    "caller_number",
    "caller_e164",
    "caller_name",
    "customer_document",
    "customer_name",
    "customer_email",
    "customer_phone",
    "notes",
)
# Event data keys that say what happened without saying about whom.
KEPT_EVENT_KEYS = {
    "field",
    "choice",
    "channel",
    "notice",
    "attempts",
    "outbox_id",
    "result",
    "effective_at",
    "history_request_id",
    "delivery",
    "due_at",
    "agent",
    "queue",
}
_TOKEN = re.compile(r"\d+(?:\.\d+)?")


@dataclass
class RecordingAction:
    path: str
    age_days: int
    delete: bool
    reason: str


@dataclass
class Plan:
    now: datetime
    recordings: list[RecordingAction] = field(default_factory=list)
    protocols: list[tuple[int, str, datetime]] = field(default_factory=list)  # id, number, resolved
    history_requests: list[int] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)  # call log rows without a protocol

    def summary(self) -> dict[str, Any]:
        return {
            "recordings_to_delete": sum(1 for r in self.recordings if r.delete),
            "recordings_kept_open_request": sum(1 for r in self.recordings if not r.delete),
            "protocols_to_anonymise": len(self.protocols),
            "history_requests_to_anonymise": len(self.history_requests),
            "calls_without_protocol_to_anonymise": len(self.calls),
        }


def _old_files(root: Path, cutoff: datetime) -> Iterable[tuple[Path, datetime]]:
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = Path(dirpath) / name
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except OSError:
                continue
            if mtime < cutoff:
                yield path, mtime


def _scan(root: Path, cutoff: datetime) -> list[tuple[Path, datetime]]:
    return sorted(_old_files(root, cutoff)) if root.is_dir() else []


async def plan(core: Core, now: datetime | None = None) -> Plan:
    settings = core.settings
    now = now or utcnow()
    result = Plan(now=now)
    async with core.sessionmaker() as session:
        if settings.recordings_dir:
            cutoff = now - timedelta(days=settings.retention_recording_days)
            old = await asyncio.to_thread(_scan, Path(settings.recordings_dir), cutoff)
            tokens = {t for path, _ in old for t in _TOKEN.findall(path.name)}
            open_ids: set[str] = set()
            token_list = sorted(tokens)
            for start in range(0, len(token_list), 500):
                chunk = token_list[start : start + 500]
                rows = await session.execute(
                    select(Protocol.number, Protocol.uniqueid, Protocol.linkedid).where(
                        Protocol.status.in_(PENDING_STATUSES),
                        or_(
                            Protocol.number.in_(chunk),
                            Protocol.uniqueid.in_(chunk),
                            Protocol.linkedid.in_(chunk),
                        ),
                    )
                )
                for row in rows:
                    open_ids.update(x for x in row if x)
            # The call log names each call's recording: those of open requests stay.
            open_files = {
                Path(f).name
                for f in await session.scalars(
                    select(CallLog.recording_file)
                    .join(Protocol, Protocol.number == CallLog.protocol_number)
                    .where(
                        CallLog.recording_file.is_not(None),
                        Protocol.status.in_(PENDING_STATUSES),
                    )
                )
            }
            for path, mtime in old:
                age = (now - mtime).days
                linked = open_ids.intersection(_TOKEN.findall(path.name))
                if path.name in open_files:
                    linked.add(path.name)
                if linked:
                    result.recordings.append(
                        RecordingAction(
                            str(path), age, False, f"request still open ({min(linked)})"
                        )
                    )
                else:
                    result.recordings.append(RecordingAction(str(path), age, True, "expired"))
        record_cutoff = now - timedelta(days=settings.retention_record_days)
        rows = await session.execute(
            select(Protocol.id, Protocol.number, Protocol.resolved_at)
            .where(
                Protocol.status.in_(ANSWERED_STATUSES),
                Protocol.resolved_at.is_not(None),
                Protocol.resolved_at < record_cutoff,
                Protocol.anonymised_at.is_(None),
            )
            .order_by(Protocol.resolved_at)
        )
        result.protocols = [(r.id, r.number, r.resolved_at) for r in rows]
        result.calls = list(
            await session.scalars(
                select(CallLog.id).where(
                    CallLog.protocol_number.is_(None),
                    CallLog.started_at < record_cutoff,
                    CallLog.caller_number.is_not(None) | CallLog.caller_e164.is_not(None),
                )
            )
        )
        result.history_requests = list(
            await session.scalars(
                select(HistoryRequest.id).where(
                    HistoryRequest.delivered_at.is_not(None),
                    HistoryRequest.delivered_at < record_cutoff,
                    HistoryRequest.anonymised_at.is_(None),
                )
            )
        )
    return result


async def apply(core: Core, todo: Plan) -> dict[str, Any]:
    """Carry the plan out; re-checks every condition inside the transaction, so a
    request reopened since the plan was made is left alone."""
    deleted = 0
    errors: list[str] = []
    removed: set[str] = set()
    for action in todo.recordings:
        if not action.delete:
            continue
        try:
            os.unlink(action.path)
            deleted += 1
            removed.add(Path(action.path).name)
        except FileNotFoundError:
            removed.add(Path(action.path).name)
        except OSError as exc:
            errors.append(f"{action.path}: {exc}")
    if removed:
        async with core.sessionmaker() as session, session.begin():
            rows = await session.execute(
                select(CallLog.id, CallLog.recording_file).where(
                    CallLog.recording_file.is_not(None)
                )
            )
            gone = [cid for cid, f in rows if Path(f).name in removed]
            if gone:
                await session.execute(
                    update(CallLog).where(CallLog.id.in_(gone)).values(recording_file=None)
                )
    anonymised = 0
    settings = core.settings
    record_cutoff = todo.now - timedelta(days=settings.retention_record_days)
    ids = [pid for pid, _, _ in todo.protocols]
    for start in range(0, len(ids), 200):
        chunk = ids[start : start + 200]
        async with core.sessionmaker() as session, session.begin():
            eligible = list(
                await session.scalars(
                    select(Protocol.id).where(
                        Protocol.id.in_(chunk),
                        Protocol.status.in_(ANSWERED_STATUSES),
                        Protocol.resolved_at < record_cutoff,
                        Protocol.anonymised_at.is_(None),
                    )
                )
            )
            if not eligible:
                continue
            await session.execute(
                update(Protocol)
                .where(Protocol.id.in_(eligible))
                .values({**dict.fromkeys(PERSONAL_COLUMNS), "anonymised_at": todo.now})
            )
            events = await session.scalars(
                select(ProtocolEvent).where(ProtocolEvent.protocol_id.in_(eligible))
            )
            for event in events:
                event.customer_note = None
                event.internal_note = None
                if event.data:
                    kept = {k: v for k, v in event.data.items() if k in KEPT_EVENT_KEYS}
                    event.data = kept or None
            await session.execute(
                delete(OutboxMessage).where(OutboxMessage.protocol_id.in_(eligible))
            )
            await session.execute(
                update(CallLog)
                .where(
                    CallLog.protocol_number.in_(
                        select(Protocol.number).where(Protocol.id.in_(eligible))
                    )
                )
                .values(caller_number=None, caller_e164=None, caller_name=None)
            )
            session.add_all(
                ProtocolEvent(
                    protocol_id=pid,
                    at=todo.now,
                    actor="system",
                    kind="anonymised",
                    data={"retention_record_days": settings.retention_record_days},
                )
                for pid in eligible
            )
            anonymised += len(eligible)
    calls = 0
    if todo.calls:
        async with core.sessionmaker() as session, session.begin():
            result = await session.execute(
                update(CallLog)
                .where(CallLog.id.in_(todo.calls), CallLog.protocol_number.is_(None))
                .values(caller_number=None, caller_e164=None, caller_name=None)
            )
            calls = result.rowcount or 0
    history = 0
    if todo.history_requests:
        async with core.sessionmaker() as session, session.begin():
            result = await session.execute(
                update(HistoryRequest)
                .where(
                    HistoryRequest.id.in_(todo.history_requests),
                    HistoryRequest.delivered_at.is_not(None),
                    HistoryRequest.anonymised_at.is_(None),
                )
                .values(phone_e164=None, document=None, email=None, anonymised_at=todo.now)
            )
            history = result.rowcount or 0
    return {
        "recordings_deleted": deleted,
        "protocols_anonymised": anonymised,
        "history_requests_anonymised": history,
        "calls_without_protocol_anonymised": calls,
        "errors": errors,
    }
