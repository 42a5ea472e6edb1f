"""The durable call log, built from AMI events (the wazo-call-logd model, on AMI).

One :class:`~sac_ivr.calls.tables.CallLog` row per ``linkedid``. Every field is a
merge that gives the same result whatever the order the events come in, and
applying an event twice changes nothing:

* times are minima (started, line answered, entered queue, agent answered) or
  maxima (left queue, ended) of event times; a field that one event kind owns
  (``Newchannel`` for the caller and the dialled number, the earliest
  ``AgentConnect`` for the agent and queue) overrides weaker sources;
* the call's legs (``Uniqueid``/``DestUniqueid``/transfer parties with this
  linkedid) are a map ``uniqueid -> {hungup, cause, ...}``: the call has ended when
  every leg it has seen has hung up; ``ended_at`` is the last leg's hangup;
* transfers are a list without duplicates.

An event's time is its ``Timestamp`` header (``timestampevents=yes`` in
manager.conf, recommended) or, without one, when we read it.

Writes go through one queue drained by one task, in batches (one transaction per
batch); a database failure is retried, never dropped silently. Reconciliation
after an AMI reconnect is queued behind the events read before it, so it sees
them applied. Run AMI on one sac-ivr process only: two writers of the same call
would race.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sac_ivr.agi import channel_vars
from sac_ivr.calls.tables import CallLog
from sac_ivr.db.base import utcnow
from sac_ivr.phones import normalize_phone
from sac_ivr.protocols.tables import Protocol, ProtocolEvent

log = logging.getLogger(__name__)

# Events the call log reads; any other is ignored (debug log).
HANDLED_EVENTS = frozenset(
    {
        "Newchannel",
        "Newstate",
        "NewCallerid",
        "VarSet",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentCalled",
        "AgentConnect",
        "AgentComplete",
        "AgentRingNoAnswer",
        "DialBegin",
        "DialEnd",
        "BridgeEnter",
        "BridgeLeave",
        "BlindTransfer",
        "AttendedTransfer",
        "MixMonitorStart",
        "MixMonitorStop",
        "Hangup",
    }
)
# Header prefixes naming the channels an event is about.
PARTY_PREFIXES = ("", "Dest", "Transferer", "Transferee", "OrigTransferer", "SecondTransferer")
LINKEDID_KEYS = tuple(f"{p}Linkedid" for p in PARTY_PREFIXES)
RECORDING_VARIABLE = "MIXMONITOR_FILENAME"
RECONCILED_TEXT = "unknown (closed by reconciliation: hangup not seen over AMI)"
UP_STATE = "6"
MAX_ID = 64
UNKNOWN_CALLERIDS = {"", "<unknown>", "unknown", "anonymous"}
_UNIQUEID_EPOCH = re.compile(r"(?:^|-)(\d{9,11})\.\d+$")


# ------------------------------------------------------------------ event parsing
def field_str(event: dict[str, Any], key: str, max_len: int = 512) -> str | None:
    """A header as a stripped string (first value if repeated), None when empty."""
    value = event.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    text = str(value).strip()
    return text[:max_len] if text else None


def linkedid_of(event: dict[str, Any]) -> str | None:
    for key in LINKEDID_KEYS:
        value = field_str(event, key, MAX_ID + 1)
        if value and len(value) <= MAX_ID:
            return value
    return None


def event_time(event: dict[str, Any], received_at: datetime) -> datetime:
    raw = field_str(event, "Timestamp", 32)
    if raw:
        try:
            return datetime.fromtimestamp(float(raw), UTC)
        except (ValueError, OverflowError, OSError):
            pass
    return received_at


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number >= 0 else None


def _callerid(value: str | None) -> str | None:
    return None if value is None or value.lower() in UNKNOWN_CALLERIDS else value[:64]


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _min(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


def _max(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


def uniqueid_epoch(uniqueid: str) -> datetime | None:
    """Asterisk's uniqueids are ``[system-]EPOCH.SEQ``: when the channel was created."""
    match = _UNIQUEID_EPOCH.search(uniqueid)
    return datetime.fromtimestamp(int(match.group(1)), UTC) if match else None


# ---------------------------------------------------------------------- merging
def new_call(linkedid: str, at: datetime, received_at: datetime) -> CallLog:
    return CallLog(
        linkedid=linkedid,
        started_at=at,
        transfers=[],
        state={"legs": {}},
        outcome="in_progress",
        reconciled=False,
        last_event_at=received_at,
    )


def apply_event(row: CallLog, event: dict[str, Any], at: datetime, received_at: datetime) -> None:
    """Merge one event into the row (idempotent, order-independent)."""
    state = copy.deepcopy(row.state) if row.state else {}
    legs: dict[str, dict[str, Any]] = state.setdefault("legs", {})
    name = field_str(event, "Event") or ""
    t = _ts(at)
    for prefix in PARTY_PREFIXES:
        uid = field_str(event, f"{prefix}Uniqueid", MAX_ID + 1)
        if uid and len(uid) <= MAX_ID and field_str(event, f"{prefix}Linkedid") == row.linkedid:
            leg = legs.setdefault(uid, {"hungup": None})
            channel = field_str(event, f"{prefix}Channel", 128)
            if channel and not leg.get("channel"):
                leg["channel"] = channel
            leg["last"] = max(leg.get("last", t), t)
            leg["seen"] = max(leg.get("seen", 0.0), _ts(received_at))
    uid = field_str(event, "Uniqueid", MAX_ID + 1)
    origin = uid == row.linkedid and field_str(event, "Linkedid") == row.linkedid

    if origin:
        _merge_origin(row, state, name, event, at)
    if not state.get("origin_new"):
        # No Newchannel of the caller's leg (yet): the earliest trace of the call.
        row.started_at = _min(row.started_at, at)
        epoch = uniqueid_epoch(row.linkedid)
        if epoch is not None:
            row.started_at = _min(row.started_at, epoch)
    if name == "Newstate" and origin and field_str(event, "ChannelState") == UP_STATE:
        row.line_answered_at = _min(row.line_answered_at, at)
    elif name == "VarSet":
        _merge_variable(row, state, event, t)
    elif name == "QueueCallerJoin":
        row.queue_entered_at = _min(row.queue_entered_at, at)
        queue = field_str(event, "Queue", 128)
        if queue and state.get("queue_src") != "agent":
            if state.get("queue_at") is None or t < state["queue_at"]:
                row.queue, state["queue_at"], state["queue_src"] = queue, t, "join"
    elif name in ("QueueCallerLeave", "QueueCallerAbandon"):
        row.queue_left_at = _max(row.queue_left_at, at)
        if name == "QueueCallerAbandon":
            state["abandoned"] = True
    elif name == "AgentConnect":
        if row.answered_at is None or at < row.answered_at:
            row.answered_at = at
            row.agent_interface = field_str(event, "Interface", 128)
            row.agent_name = field_str(event, "MemberName", 128)
            queue = field_str(event, "Queue", 128)
            if queue:
                row.queue, state["queue_at"], state["queue_src"] = queue, t, "agent"
    elif name == "AgentComplete":
        talk = _float(field_str(event, "TalkTime"))
        if talk is not None and (state.get("complete_at") is None or t < state["complete_at"]):
            state["talk"], state["complete_at"] = talk, t
    elif name in ("BlindTransfer", "AttendedTransfer"):
        _merge_transfer(row, name, event, at)
    elif name == "MixMonitorStart":
        state["recorded"] = True
    elif name == "Hangup" and uid in legs and field_str(event, "Linkedid") == row.linkedid:
        leg = legs[uid]
        if leg.get("hungup") is None or t < leg["hungup"] or leg.get("reconciled"):
            leg["hungup"] = t
            leg["cause"] = _int(field_str(event, "Cause", 8))
            leg["cause_txt"] = field_str(event, "Cause-txt", 128)
            leg.pop("reconciled", None)
    row.last_event_at = _max(row.last_event_at, received_at)
    row.state = state
    derive(row)


def _merge_origin(
    row: CallLog, state: dict[str, Any], name: str, event: dict[str, Any], at: datetime
) -> None:
    """The leg whose uniqueid is the linkedid is the caller's: it names the call."""
    number = _callerid(field_str(event, "CallerIDNum", 64))
    caller_name = _callerid(field_str(event, "CallerIDName", 128))
    channel = field_str(event, "Channel", 128)
    if name == "Newchannel":
        if not state.get("origin_new") or at < (_dt(state.get("origin_at")) or at):
            state["origin_new"], state["origin_at"] = True, _ts(at)
            row.started_at = at
            row.caller_number, row.caller_name, row.channel = number, caller_name, channel
            exten = field_str(event, "Exten", 64)
            row.called_number = exten if exten and exten not in ("s", "h") else None
            if field_str(event, "ChannelState") == UP_STATE:
                row.line_answered_at = _min(row.line_answered_at, at)
        return
    if not state.get("origin_new"):
        row.caller_number = row.caller_number or number
        row.caller_name = row.caller_name or caller_name
        row.channel = row.channel or channel


def _merge_variable(row: CallLog, state: dict[str, Any], event: dict[str, Any], t: float) -> None:
    variable = (field_str(event, "Variable", 80) or "").lstrip("_").upper()
    value = field_str(event, "Value", 512)
    if not value:
        return
    if variable == channel_vars.PROTOCOL and value.isdigit() and len(value) <= 40:
        if state.get("protocol_at") is None or t < state["protocol_at"]:
            row.protocol_number, state["protocol_at"] = value, t
    elif variable == RECORDING_VARIABLE:
        if state.get("recording_at") is None or t < state["recording_at"]:
            row.recording_file, state["recording_at"] = value, t


def _merge_transfer(row: CallLog, name: str, event: dict[str, Any], at: datetime) -> None:
    if name == "BlindTransfer":
        exten = field_str(event, "Extension", 64)
        context = field_str(event, "Context", 64)
        entry = {
            "at": at.isoformat(),
            "kind": "blind",
            "by": field_str(event, "TransfererChannel", 128),
            "to": f"{exten}@{context}" if exten and context else exten,
            "result": field_str(event, "Result", 32),
        }
    else:
        entry = {
            "at": at.isoformat(),
            "kind": "attended",
            "by": field_str(event, "OrigTransfererChannel", 128),
            "to": field_str(event, "TransferTargetChannel", 128)
            or field_str(event, "SecondTransfererChannel", 128),
            "result": field_str(event, "Result", 32),
        }
    transfers = list(row.transfers or [])
    if entry not in transfers:
        transfers.append(entry)
        transfers.sort(key=lambda item: item["at"])
        row.transfers = transfers


def derive(row: CallLog) -> None:
    """Fields computed from the merged ones: end, cause, durations, outcome."""
    state = row.state or {}
    legs: dict[str, dict[str, Any]] = state.get("legs", {})
    ended = bool(legs) and all(leg.get("hungup") is not None for leg in legs.values())
    if ended:
        row.ended_at = _dt(max(leg["hungup"] for leg in legs.values()))
        origin = legs.get(row.linkedid)
        if origin is not None and origin.get("cause") is not None:
            source: dict[str, Any] | None = origin
        else:
            with_cause = [leg for leg in legs.values() if leg.get("cause") is not None]
            source = max(with_cause, key=lambda leg: leg["hungup"]) if with_cause else None
        row.hangup_cause = source.get("cause") if source else None
        row.hangup_cause_text = source.get("cause_txt") if source else None
        row.reconciled = any(leg.get("reconciled") for leg in legs.values())
        if source is None and row.reconciled:
            row.hangup_cause_text = RECONCILED_TEXT
    else:
        row.ended_at = None
        row.hangup_cause = None
        row.hangup_cause_text = None
        row.reconciled = False
    row.caller_e164 = normalize_phone(row.caller_number)
    row.duration_s = _seconds(row.started_at, row.ended_at)
    if row.queue_entered_at is not None:
        until = row.answered_at or row.queue_left_at or row.ended_at
        row.wait_s = _seconds(row.queue_entered_at, until)
    else:
        row.wait_s = None
    if state.get("talk") is not None:
        row.talk_s = float(state["talk"])
    else:
        row.talk_s = _seconds(row.answered_at, row.ended_at)
    if row.ended_at is None:
        row.outcome = "in_progress"
    elif row.answered_at is not None:
        row.outcome = "answered"
    elif row.queue_entered_at is not None:
        row.outcome = "abandoned"
    else:
        row.outcome = "ivr"


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds()), 3)


def reconcile_row(
    row: CallLog,
    live_uniqueids: set[str],
    live_linkedids: set[str],
    sent_at: datetime,
    lost_at: datetime | None,
) -> bool:
    """Close the legs Asterisk no longer has; True when the call got closed by this.

    Only legs last heard of before ``sent_at`` (when CoreShowChannels was sent) are
    judged: a leg born after the snapshot is not in it yet. A closed leg ends at the
    time the link was lost (if we know it and it is later) or at its last event.
    """
    if row.ended_at is not None:
        return False
    state = copy.deepcopy(row.state) if row.state else {}
    legs: dict[str, dict[str, Any]] = state.setdefault("legs", {})
    changed = False
    for uid, leg in legs.items():
        if leg.get("hungup") is not None or uid in live_uniqueids:
            continue
        if leg.get("seen", 0.0) >= _ts(sent_at):
            continue
        end = leg.get("last") or _ts(row.last_event_at)
        if lost_at is not None and _ts(lost_at) > end:
            end = _ts(lost_at)
        leg.update(hungup=end, cause=None, cause_txt=None, reconciled=True)
        changed = True
    if not legs and row.last_event_at < sent_at and row.linkedid not in live_linkedids:
        end = _ts(lost_at) if lost_at else _ts(row.last_event_at)
        end = max(end, _ts(row.started_at))
        legs[row.linkedid] = {"hungup": end, "reconciled": True, "last": end, "seen": end}
        changed = True
    if changed:
        row.state = state
        derive(row)
    return changed and row.ended_at is not None


# ----------------------------------------------------------------- the writer
@dataclass
class _Event:
    linkedid: str
    event: dict[str, Any]
    at: datetime
    received_at: datetime


@dataclass
class _Control:
    kind: str  # "reconcile" | "flush" | "stop"
    future: asyncio.Future[int]
    channels: Sequence[dict[str, Any]] = field(default_factory=list)
    sent_at: datetime | None = None
    lost_at: datetime | None = None


class CallLogWriter:
    """Queues AMI events (:meth:`feed`, an AMI subscriber) and stores them in batches."""

    RETRY_MIN_S = 0.2
    RETRY_MAX_S = 10.0

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_batch: int = 500,
        max_queued: int = 100_000,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._max_batch = max_batch
        self._max_queued = max_queued
        self._queue: asyncio.Queue[_Event | _Control] | None = None
        self._task: asyncio.Task[None] | None = None
        self._dropped = 0
        self._stopping = False
        self.events_stored = 0

    # -- input
    def feed(self, event: dict[str, Any]) -> None:
        """Take one AMI event (never blocks; garbage and unknown events are ignored)."""
        name = event.get("Event")
        if not isinstance(name, str) or name not in HANDLED_EVENTS:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("call log: ignoring event %.40r", name)
            return
        linkedid = linkedid_of(event)
        if linkedid is None:
            log.debug("call log: ignoring %s without a usable Linkedid", name)
            return
        if self._queue is None:
            raise RuntimeError("CallLogWriter.start() was not called")
        received_at = utcnow()
        item = _Event(linkedid, event, event_time(event, received_at), received_at)
        if self._queue.qsize() >= self._max_queued:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.error(
                    "call log: %d event(s) dropped, the database is not keeping up; "
                    "reconciliation will close the affected calls",
                    self._dropped,
                )
            return
        self._queue.put_nowait(item)

    async def reconcile(
        self,
        channels: Sequence[dict[str, Any]],
        sent_at: datetime,
        lost_at: datetime | None,
    ) -> int:
        """Close calls Asterisk no longer has; returns how many were closed."""
        return await self._control("reconcile", channels=channels, sent_at=sent_at, lost_at=lost_at)

    async def flush(self) -> None:
        """Wait until every event fed so far is stored."""
        await self._control("flush")

    async def _control(self, kind: str, **kwargs: Any) -> int:
        if self._queue is None:
            raise RuntimeError("CallLogWriter.start() was not called")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Control(kind, future, **kwargs))
        return await future

    # -- lifecycle
    async def start(self) -> None:
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="call-log")

    async def close(self, timeout: float = 10.0) -> None:
        """Store what is queued (at most ``timeout`` seconds), then stop."""
        task, self._task = self._task, None
        if task is None or self._queue is None:
            return
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Control("stop", future))
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            log.error("call log: %d event(s) not stored at shutdown", self._queue.qsize())
            self._stopping = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the worker
    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            events: list[_Event] = []
            for item in batch:
                if isinstance(item, _Event):
                    events.append(item)
                    continue
                await self._store(events)
                events = []
                if await self._handle_control(item):
                    return
            await self._store(events)

    async def _handle_control(self, item: _Control) -> bool:
        if item.kind == "stop":
            item.future.set_result(0)
            return True
        if item.kind == "flush":
            if not item.future.done():
                item.future.set_result(0)
            return False
        try:
            closed = await self._with_retry(self._reconcile, item)
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return False
        if not item.future.done():
            item.future.set_result(closed)
        return False

    async def _store(self, events: list[_Event]) -> None:
        if not events:
            return
        try:
            await self._with_retry(self._store_once, events)
        except SQLAlchemyError as exc:
            if len(events) == 1:
                item = events[0]
                log.error(
                    "call log: dropped a %s event of call %s the database refused: %s",
                    item.event.get("Event"),
                    item.linkedid,
                    exc,
                )
                return
            for item in events:  # find the event the database refuses, keep the others
                await self._store([item])
            return
        self.events_stored += len(events)

    async def _with_retry(self, fn: Any, arg: Any) -> int:
        """Retry while the database is unreachable; re-raise errors retrying won't fix."""
        delay = self.RETRY_MIN_S
        conflicts = 0
        while True:
            try:
                return await fn(arg)
            except IntegrityError:
                conflicts += 1  # another writer inserted the same call: reload and merge
                if conflicts > 3:
                    raise
                log.info("call log: concurrent insert of a call; retrying the batch")
                continue
            except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
                if self._stopping:
                    raise
                log.warning("call log: database unavailable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.RETRY_MAX_S)

    async def _store_once(self, events: list[_Event]) -> int:
        async with self._sessionmaker() as session, session.begin():
            rows = await _load(session, {e.linkedid for e in events})
            touched: dict[str, CallLog] = {}
            for item in events:
                row = rows.get(item.linkedid)
                if row is None:
                    row = new_call(item.linkedid, item.at, item.received_at)
                    session.add(row)
                    rows[item.linkedid] = row
                apply_event(row, item.event, item.at, item.received_at)
                touched[item.linkedid] = row
            await link_protocols(session, touched.values())
        return len(events)

    async def _reconcile(self, item: _Control) -> int:
        assert item.sent_at is not None
        uniqueids = {u for c in item.channels if (u := field_str(c, "Uniqueid", MAX_ID))}
        linkedids = {u for c in item.channels if (u := field_str(c, "Linkedid", MAX_ID))}
        closed = 0
        async with self._sessionmaker() as session, session.begin():
            rows = (await session.scalars(select(CallLog).where(CallLog.ended_at.is_(None)))).all()
            for row in rows:
                if reconcile_row(row, uniqueids, linkedids, item.sent_at, item.lost_at):
                    closed += 1
        if closed:
            log.warning("call log: %d call(s) closed by reconciliation (hangup not seen)", closed)
        return closed


async def _load(session: AsyncSession, linkedids: Iterable[str]) -> dict[str, CallLog]:
    ids = sorted(linkedids)
    rows: dict[str, CallLog] = {}
    for start in range(0, len(ids), 400):  # stay under SQLite's bound-parameter limit
        chunk = ids[start : start + 400]
        result = await session.scalars(select(CallLog).where(CallLog.linkedid.in_(chunk)))
        rows.update({row.linkedid: row for row in result})
    return rows


async def link_protocols(session: AsyncSession, rows: Iterable[CallLog]) -> None:
    """Tie calls and protocols together both ways.

    A call without a number takes the one issued on it: the protocol whose
    ``linkedid`` is the call's, or whose ``uniqueid`` (the AGI channel's) is one of
    its legs. A protocol without a ``linkedid`` gets its call's.
    """
    rows = list(rows)
    missing: dict[str, CallLog] = {}
    for row in rows:
        if row.protocol_number is None:
            missing[row.linkedid] = row
            missing.update({uid: row for uid in row.state["legs"]})
    if missing:
        keys = list(missing)[:400]
        found = await session.execute(
            select(Protocol.number, Protocol.uniqueid, Protocol.linkedid)
            .where(or_(Protocol.uniqueid.in_(keys), Protocol.linkedid.in_(keys)))
            .order_by(Protocol.issued_at, Protocol.id)
        )
        for number, uniqueid, linkedid in found:
            row = missing.get(linkedid) if linkedid in missing else missing.get(uniqueid)
            if row is not None and row.protocol_number is None:
                row.protocol_number = number
    for row in rows:
        if row.protocol_number and row.state.get("protocol_linked") != row.protocol_number:
            await session.execute(
                update(Protocol)
                .where(Protocol.number == row.protocol_number, Protocol.linkedid.is_(None))
                .values(linkedid=row.linkedid)
            )
            exists = await session.scalar(
                select(Protocol.id).where(Protocol.number == row.protocol_number)
            )
            if exists is not None:  # else: not committed yet; try again on the next event
                row.state = {**row.state, "protocol_linked": row.protocol_number}
    for row in rows:
        await _record_answer(session, row)


async def _record_answer(session: AsyncSession, row: CallLog) -> None:
    """When an agent answers the call, the protocol names that agent (if no one is
    named yet) and its timeline says who answered and when. Once per call."""
    agent = row.agent_name or row.agent_interface
    if not (row.protocol_number and row.answered_at and agent):
        return
    if row.state.get("answer_recorded") == row.protocol_number:
        return
    protocol = await session.scalar(select(Protocol).where(Protocol.number == row.protocol_number))
    if protocol is None:
        return  # not committed yet: the next event of this call tries again
    if protocol.agent is None:
        protocol.agent = agent[:64]
    session.add(
        ProtocolEvent(
            protocol_id=protocol.id,
            at=row.answered_at,
            actor="system",
            kind="answered",
            data={
                "agent": agent,
                "agent_interface": row.agent_interface,
                "queue": row.queue,
                "linkedid": row.linkedid,
            },
        )
    )
    row.state = {**row.state, "answer_recorded": row.protocol_number}
