"""One fold per linkedid: what the AMI events say about one call, in any order.

:func:`fold_event` merges one event into a :class:`CallFacts` (the facts of the call
whose linkedid it carries). It is the only place AMI events are interpreted as call
facts; the call log (:mod:`sac_ivr.calls.calllog`, whose ``CallLog`` row carries the
facts in its columns and ``state``) and the live state (:mod:`sac_ivr.calls.tracker`,
a :class:`CallFold` per call in memory) both consume it.

Every fact is a merge that gives the same result whatever the order the events come
in, and applying an event twice changes nothing:

* times are minima (started, line answered, entered queue, agent answered) or
  maxima (left queue, last event) of event times; a fact that one event kind owns
  (``Newchannel`` of the caller's leg for the caller and the dialled number, the
  earliest ``AgentConnect`` for the agent and queue, the earliest VarSet for the
  protocol) overrides weaker sources;
* the call's legs (every party of an event with this linkedid) are a map
  ``uniqueid -> {hungup, cause, cause_txt, channel, last, seen}`` in ``state["legs"]``;
* transfers are a list without duplicates, in time order.

What the facts mean for a record (end, durations, outcome) is the call log's
business; what they mean for a panel (queued, ringing...) is the tracker's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sac_ivr.calls.events import (
    UP_STATE,
    AmiEvent,
    field_id,
    field_str,
    is_origin,
    known_caller_id,
    party_legs,
    protocol_of,
    recording_of,
    to_int,
    to_seconds,
    uniqueid_epoch,
)


class CallFacts(Protocol):
    """What a fold writes into: a ``CallLog`` row, or a :class:`CallFold` in memory."""

    linkedid: str
    started_at: datetime
    caller_number: str | None
    caller_name: str | None
    channel: str | None
    called_number: str | None
    line_answered_at: datetime | None
    queue_entered_at: datetime | None
    queue_left_at: datetime | None
    answered_at: datetime | None
    agent_interface: str | None
    agent_name: str | None
    queue: str | None
    protocol_number: str | None
    recording_file: str | None
    transfers: list[dict[str, Any]]
    state: dict[str, Any]
    last_event_at: datetime


@dataclass
class CallFold:
    """The facts of one call, in memory (the tracker's carrier for :func:`fold_event`)."""

    linkedid: str
    started_at: datetime
    last_event_at: datetime
    caller_number: str | None = None
    caller_name: str | None = None
    channel: str | None = None
    called_number: str | None = None
    line_answered_at: datetime | None = None
    queue_entered_at: datetime | None = None
    queue_left_at: datetime | None = None
    answered_at: datetime | None = None
    agent_interface: str | None = None
    agent_name: str | None = None
    queue: str | None = None
    protocol_number: str | None = None
    recording_file: str | None = None
    transfers: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=lambda: {"legs": {}})

    @property
    def legs(self) -> dict[str, dict[str, Any]]:
        legs: dict[str, dict[str, Any]] = self.state.setdefault("legs", {})
        return legs


def ts(value: datetime) -> float:
    return value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


def latest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


def fold_event(facts: CallFacts, event: AmiEvent, at: datetime, received_at: datetime) -> None:
    """Merge one event of this call (``at``: when it happened) into ``facts``."""
    state = copy.deepcopy(facts.state) if facts.state else {}
    legs: dict[str, dict[str, Any]] = state.setdefault("legs", {})
    name = field_str(event, "Event") or ""
    t = ts(at)
    for _prefix, uid, channel in party_legs(event, facts.linkedid):
        leg = legs.setdefault(uid, {"hungup": None})
        if channel and not leg.get("channel"):
            leg["channel"] = channel
        leg["last"] = max(leg.get("last", t), t)
        leg["seen"] = max(leg.get("seen", 0.0), ts(received_at))
    event_uid = field_id(event, "Uniqueid")
    origin = is_origin(event, facts.linkedid)

    if origin:
        _fold_origin(facts, state, name, event, at)
    if not state.get("origin_new"):
        # No Newchannel of the caller's leg (yet): the earliest trace of the call.
        facts.started_at = earliest(facts.started_at, at)
        epoch = uniqueid_epoch(facts.linkedid)
        if epoch is not None:
            facts.started_at = earliest(facts.started_at, epoch)
    if name == "Newstate" and origin and field_str(event, "ChannelState") == UP_STATE:
        facts.line_answered_at = earliest(facts.line_answered_at, at)
    elif name == "VarSet":
        _fold_variable(facts, state, event, t)
    elif name == "QueueCallerJoin":
        facts.queue_entered_at = earliest(facts.queue_entered_at, at)
        queue = field_str(event, "Queue", 128)
        if queue and state.get("queue_src") != "agent":
            if state.get("queue_at") is None or t < state["queue_at"]:
                facts.queue, state["queue_at"], state["queue_src"] = queue, t, "join"
    elif name in ("QueueCallerLeave", "QueueCallerAbandon"):
        facts.queue_left_at = latest(facts.queue_left_at, at)
        if name == "QueueCallerAbandon":
            state["abandoned"] = True
    elif name == "AgentConnect":
        if facts.answered_at is None or at < facts.answered_at:
            facts.answered_at = at
            facts.agent_interface = field_str(event, "Interface", 128)
            facts.agent_name = field_str(event, "MemberName", 128)
            queue = field_str(event, "Queue", 128)
            if queue:
                facts.queue, state["queue_at"], state["queue_src"] = queue, t, "agent"
    elif name == "AgentComplete":
        talk = to_seconds(field_str(event, "TalkTime"))
        if talk is not None and (state.get("complete_at") is None or t < state["complete_at"]):
            state["talk"], state["complete_at"] = talk, t
    elif name in ("BlindTransfer", "AttendedTransfer"):
        _fold_transfer(facts, name, event, at)
    elif name == "MixMonitorStart":
        state["recorded"] = True
    elif name == "Hangup" and event_uid in legs and field_str(event, "Linkedid") == facts.linkedid:
        leg = legs[event_uid]
        if leg.get("hungup") is None or t < leg["hungup"] or leg.get("reconciled"):
            leg["hungup"] = t
            leg["cause"] = to_int(field_str(event, "Cause", 8))
            leg["cause_txt"] = field_str(event, "Cause-txt", 128)
            leg.pop("reconciled", None)
    facts.last_event_at = latest(facts.last_event_at, received_at)
    facts.state = state


def _fold_origin(
    facts: CallFacts, state: dict[str, Any], name: str, event: AmiEvent, at: datetime
) -> None:
    """The leg whose uniqueid is the linkedid is the caller's: it names the call."""
    number = known_caller_id(field_str(event, "CallerIDNum", 64))
    caller_name = known_caller_id(field_str(event, "CallerIDName", 128))
    channel = field_str(event, "Channel", 128)
    if name == "Newchannel":
        if not state.get("origin_new") or at < (dt(state.get("origin_at")) or at):
            state["origin_new"], state["origin_at"] = True, ts(at)
            facts.started_at = at
            facts.caller_number, facts.caller_name, facts.channel = number, caller_name, channel
            exten = field_str(event, "Exten", 64)
            facts.called_number = exten if exten and exten not in ("s", "h") else None
            if field_str(event, "ChannelState") == UP_STATE:
                facts.line_answered_at = earliest(facts.line_answered_at, at)
        return
    if not state.get("origin_new"):
        facts.caller_number = facts.caller_number or number
        facts.caller_name = facts.caller_name or caller_name
        facts.channel = facts.channel or channel


def _fold_variable(facts: CallFacts, state: dict[str, Any], event: AmiEvent, t: float) -> None:
    protocol = protocol_of(event)
    if protocol is not None:
        if state.get("protocol_at") is None or t < state["protocol_at"]:
            facts.protocol_number, state["protocol_at"] = protocol, t
        return
    recording = recording_of(event)
    if recording is not None:
        if state.get("recording_at") is None or t < state["recording_at"]:
            facts.recording_file, state["recording_at"] = recording, t


def _fold_transfer(facts: CallFacts, name: str, event: AmiEvent, at: datetime) -> None:
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
    transfers = list(facts.transfers or [])
    if entry not in transfers:
        transfers.append(entry)
        transfers.sort(key=lambda item: item["at"])
        facts.transfers = transfers


def all_legs_hung_up(facts: CallFacts) -> bool:
    """Every leg the call has shown has hung up (and it has shown at least one)."""
    legs: dict[str, dict[str, Any]] = (facts.state or {}).get("legs", {})
    return bool(legs) and all(leg.get("hungup") is not None for leg in legs.values())
