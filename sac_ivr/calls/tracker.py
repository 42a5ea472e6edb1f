"""Live call and queue state, in memory, from the AMI events (for the panels).

:class:`CallTracker` is fed the same events as the call log (``handle_event`` is an
AMI subscriber), keeps the calls in progress and the queues, and publishes every
change it makes to :class:`~sac_ivr.live.LiveHub`. A panel loads
``core.extras["calls"].snapshot()`` once, then applies the live events.

A call's facts (caller, channel, protocol, legs, queue entry, the agent who
answered) come from the same fold as the call log's (:mod:`sac_ivr.calls.fold`),
its fields from :mod:`sac_ivr.calls.events`; only what depends on the order of
events is kept here: the state, the queue the call is in now, the agents rung.

``snapshot()`` (JSON-able)::

    {
      "ami_connected": bool,
      "at": "2024-11-22T12:00:00+00:00",          # when the snapshot was taken
      "calls": [CALL, ...],                        # oldest first
      "queues": {"sac-agents": QUEUE, ...},        # by name
    }

``CALL``::

    {
      "linkedid": "1732280000.1",     # the call's id (all its legs share it)
      "channel": "PJSIP/trunk-00000001",  # the caller's leg
      "protocol": "2024112200000018" | None,
      "caller": "11987654321" | None,  # as Asterisk gave it
      "caller_e164": "+5511987654321" | None,
      "state": "ivr" | "queued" | "ringing" | "connected",
      "queue": "sac-agents" | None,
      "started_at": ISO | None,
      "entered_queue_at": ISO | None, # first time the caller joined a queue
      "answered_at": ISO | None,      # when an agent answered (not the IVR)
      "agent_interface": "PJSIP/agent1" | None,   # the agent who answered
      "agent_name": "Maria" | None,
      "agent": "PJSIP/agent1" | None, # who answered; while ringing, the last one rung
      "ringing": ["PJSIP/agent1", ...],  # interfaces being rung now
      "ended_at": ISO | None,         # set only in "end" events
    }

``QUEUE``::

    {
      "name": "sac-agents",
      "calls_waiting": 1,
      "longest_wait_s": 12.3 | None,  # at the time of the snapshot/event
      "oldest_entered_at": ISO | None,
      "waiting": [{"uniqueid", "linkedid", "caller_e164", "protocol", "entered_queue_at": ISO}],
      "members": [MEMBER, ...],       # by interface
    }

``MEMBER``::

    {
      "interface": "PJSIP/agent1", "name": "Maria",
      "status": "available" | "busy" | "paused" | "unavailable",
      "paused": bool, "paused_reason": str | None, "in_call": bool,
      "device_state": 0..8,           # Asterisk's AST_DEVICE_* code
      "calls_taken": int,
    }

Events published to ``core.live`` (exactly these shapes)::

    {"type": "call",   "action": "update" | "end", "call": CALL}
    {"type": "queue",  "queue": QUEUE}
    {"type": "member", "action": "update" | "removed", "queue": "sac-agents", "member": MEMBER}
    {"type": "link",   "connected": bool, "at": ISO}   # the AMI link went up/down

A change is published only when the view changed (duplicate events publish
nothing). ``status``: paused wins; then Asterisk's device state 1 (not in use) or 0
(unknown; Asterisk still rings such members) is ``available``; 2, 3, 6, 7, 8 (in
use, busy, ringing, ring-in-use, on hold) or ``InCall: 1`` are ``busy``; 4 and 5
(invalid, unavailable) are ``unavailable``.

After each (re)connect the owner calls :meth:`CallTracker.reconcile` with the
``CoreShowChannels`` list (ends calls whose channels are gone, adds calls already in
progress) and :meth:`CallTracker.seed_queues` with the ``QueueStatus`` list.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sac_ivr.calls.events import (
    CALL_STATES,
    AmiEvent,
    ChannelSnapshot,
    event_time,
    field_id,
    field_str,
    flag,
    linkedid_of,
    protocol_of,
    to_int,
)
from sac_ivr.calls.fold import CallFold, all_legs_hung_up, fold_event
from sac_ivr.http.listing import iso
from sac_ivr.phones import normalize_phone

log = logging.getLogger(__name__)

__all__ = ["CALL_STATES", "CallTracker", "LiveCall", "Publish"]

Publish = Callable[[dict[str, Any]], None]
RECENTLY_ENDED_MAX = 2000
AVAILABLE_STATES = {0, 1}
UNAVAILABLE_STATES = {4, 5}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class LiveCall:
    """A call in progress: its facts (the shared fold, :mod:`sac_ivr.calls.fold`) and
    what only the live view needs, which depends on the order of events: the state,
    the queue it is in now, the agents being rung."""

    facts: CallFold
    state: str = "ivr"
    queue: str | None = None  # the queue it is in now (the facts keep the first one)
    bridged_at: datetime | None = None  # connected by a bridge without AgentConnect
    ringing: dict[str, None] = field(default_factory=dict)  # interfaces, in calling order
    seen_at: datetime = field(default_factory=_utcnow)

    @property
    def linkedid(self) -> str:
        return self.facts.linkedid

    @property
    def caller(self) -> str | None:
        return self.facts.caller_number

    @property
    def protocol(self) -> str | None:
        return self.facts.protocol_number

    def has_leg(self, uniqueid: str) -> bool:
        return uniqueid in self.facts.legs

    def caller_hung_up(self) -> bool:
        origin = self.facts.legs.get(self.linkedid)
        return origin is not None and origin.get("hungup") is not None

    def view(self, ended_at: datetime | None = None) -> dict[str, Any]:
        facts = self.facts
        return {
            "linkedid": facts.linkedid,
            "channel": facts.channel,
            "protocol": facts.protocol_number,
            "caller": facts.caller_number,
            "caller_e164": normalize_phone(facts.caller_number),
            "state": self.state,
            "queue": self.queue,
            "started_at": iso(facts.started_at),
            "entered_queue_at": iso(facts.queue_entered_at),
            "answered_at": iso(facts.answered_at or self.bridged_at),
            "agent_interface": facts.agent_interface,
            "agent_name": facts.agent_name,
            "agent": facts.agent_interface
            or (list(self.ringing)[-1] if self.state == "ringing" and self.ringing else None),
            "ringing": sorted(self.ringing),
            "ended_at": iso(ended_at),
        }


@dataclass
class LiveMember:
    interface: str
    name: str | None = None
    device_state: int = 0
    paused: bool = False
    paused_reason: str | None = None
    in_call: bool = False
    calls_taken: int = 0

    @property
    def status(self) -> str:
        if self.paused:
            return "paused"
        if self.device_state in UNAVAILABLE_STATES:
            return "unavailable"
        if self.in_call or self.device_state not in AVAILABLE_STATES:
            return "busy"
        return "available"

    def view(self) -> dict[str, Any]:
        return {
            "interface": self.interface,
            "name": self.name,
            "status": self.status,
            "paused": self.paused,
            "paused_reason": self.paused_reason,
            "in_call": self.in_call,
            "device_state": self.device_state,
            "calls_taken": self.calls_taken,
        }


@dataclass
class Waiting:
    uniqueid: str
    linkedid: str
    since: datetime


@dataclass
class LiveQueue:
    name: str
    members: dict[str, LiveMember] = field(default_factory=dict)
    waiting: dict[str, Waiting] = field(default_factory=dict)


class CallTracker:
    """In-memory state of calls and queues; see the module docstring."""

    def __init__(self, publish: Publish | None = None) -> None:
        self._publish = publish or (lambda event: None)
        self.calls: dict[str, LiveCall] = {}
        self.queues: dict[str, LiveQueue] = {}
        self.ami_connected = False
        self._recently_ended: OrderedDict[str, None] = OrderedDict()
        self._received_at = _utcnow()  # when the event being applied was read
        self._handlers: dict[str, Callable[[AmiEvent, datetime], None]] = {
            "Newchannel": self._on_channel,
            "Newstate": self._on_channel,
            "NewCallerid": self._on_channel,
            "VarSet": self._on_varset,
            "QueueCallerJoin": self._on_queue_join,
            "QueueCallerLeave": self._on_queue_leave,
            "QueueCallerAbandon": self._on_queue_leave,
            "AgentCalled": self._on_agent_called,
            "AgentRingNoAnswer": self._on_agent_no_answer,
            "AgentConnect": self._on_agent_connect,
            "BridgeEnter": self._on_bridge_enter,
            "Hangup": self._on_hangup,
            "QueueMemberAdded": self._on_member,
            "QueueMemberStatus": self._on_member,
            "QueueMemberPause": self._on_member,
            "QueueMemberPenalty": self._on_member,
            "QueueMemberRinginuse": self._on_member,
            "QueueMemberRemoved": self._on_member_removed,
        }

    # ------------------------------------------------------------------ input
    def handle_event(self, event: dict[str, Any]) -> None:
        """AMI subscriber: apply one event (unknown events and garbage are ignored)."""
        name = event.get("Event")
        handler = self._handlers.get(name) if isinstance(name, str) else None
        if handler is None:
            return
        self._received_at = _utcnow()
        try:
            handler(event, event_time(event, self._received_at))
        except Exception:
            log.exception("live state: could not apply a %s event", name)

    def set_link(self, connected: bool) -> None:
        """AMI link callback."""
        if connected != self.ami_connected:
            self.ami_connected = connected
            self._publish({"type": "link", "connected": connected, "at": _utcnow().isoformat()})

    # ----------------------------------------------------------------- output
    def snapshot(self) -> dict[str, Any]:
        now = _utcnow()
        calls = sorted(self.calls.values(), key=lambda c: (c.facts.started_at, c.linkedid))
        names = list(self.queues)
        return {
            "ami_connected": self.ami_connected,
            "at": now.isoformat(),
            "calls": [c.view() for c in calls],
            "queues": {name: self._queue_view(self.queues[name], now) for name in sorted(names)},
        }

    def _queue_view(self, queue: LiveQueue, now: datetime | None = None) -> dict[str, Any]:
        now = now or _utcnow()
        waiting = sorted(queue.waiting.values(), key=lambda w: (w.since, w.uniqueid))
        oldest = waiting[0].since if waiting else None
        return {
            "name": queue.name,
            "calls_waiting": len(waiting),
            "longest_wait_s": round(max(0.0, (now - oldest).total_seconds()), 1)
            if oldest
            else None,
            "oldest_entered_at": iso(oldest),
            "waiting": [self._waiting_view(w) for w in waiting],
            "members": [queue.members[i].view() for i in sorted(queue.members)],
        }

    def _waiting_view(self, waiting: Waiting) -> dict[str, Any]:
        call = self.calls.get(waiting.linkedid)
        return {
            "uniqueid": waiting.uniqueid,
            "linkedid": waiting.linkedid,
            "caller_e164": normalize_phone(call.caller) if call else None,
            "protocol": call.protocol if call else None,
            "entered_queue_at": waiting.since.isoformat(),
        }

    # ------------------------------------------------------------- call events
    def _call_for(self, event: AmiEvent, at: datetime) -> LiveCall | None:
        """The call the event belongs to, created if new (never for an ended one),
        with the event folded into its facts."""
        linkedid = linkedid_of(event)
        if linkedid is None:
            return None
        call = self.calls.get(linkedid)
        if call is None:
            if linkedid in self._recently_ended:
                return None
            facts = CallFold(linkedid=linkedid, started_at=at, last_event_at=self._received_at)
            call = self.calls[linkedid] = LiveCall(facts)
        fold_event(call.facts, event, at, self._received_at)
        call.seen_at = _utcnow()
        return call

    def _changed(self, call: LiveCall, before: dict[str, Any] | None) -> None:
        view = call.view()
        if view != before:
            self._publish({"type": "call", "action": "update", "call": view})

    def _on_channel(self, event: AmiEvent, at: datetime) -> None:
        before = self._before(event)
        call = self._call_for(event, at)
        if call is not None:
            self._changed(call, before)

    def _before(self, event: AmiEvent) -> dict[str, Any] | None:
        linkedid = linkedid_of(event)
        call = self.calls.get(linkedid) if linkedid else None
        return call.view() if call else None

    def _on_varset(self, event: AmiEvent, at: datetime) -> None:
        if protocol_of(event) is None:
            return  # the only variable the live view shows
        before = self._before(event)
        call = self._call_for(event, at)
        if call is not None:
            self._changed(call, before)
            self._publish_queue_of(call)

    def _on_queue_join(self, event: AmiEvent, at: datetime) -> None:
        before = self._before(event)
        call = self._call_for(event, at)
        queue_name = field_str(event, "Queue", 128)
        uid = field_id(event, "Uniqueid")
        if call is None or not queue_name or not uid:
            return
        call.queue = queue_name
        if call.state != "connected":
            call.state = "queued"
        self._changed(call, before)
        queue = self._queue(queue_name)
        if uid not in queue.waiting:
            queue.waiting[uid] = Waiting(uid, call.linkedid, at)
            self._publish_queue(queue)

    def _on_queue_leave(self, event: AmiEvent, at: datetime) -> None:
        before = self._before(event)
        call = self._call_for(event, at)
        queue_name = field_str(event, "Queue", 128)
        uid = field_id(event, "Uniqueid")
        if call is not None and call.state in ("queued", "ringing"):
            call.state = "ivr"  # timed out or gave up: back in the dialplan
            call.ringing.clear()
            self._changed(call, before)
        queue = self.queues.get(queue_name or "")
        if queue is not None and uid and queue.waiting.pop(uid, None) is not None:
            self._publish_queue(queue)

    def _on_agent_called(self, event: AmiEvent, at: datetime) -> None:
        before = self._before(event)
        call = self._call_for(event, at)
        if call is None or call.state == "connected":
            return
        interface = field_str(event, "Interface", 128) or "?"
        call.ringing.pop(interface, None)
        call.ringing[interface] = None
        call.state = "ringing"
        self._changed(call, before)

    def _on_agent_no_answer(self, event: AmiEvent, at: datetime) -> None:
        before = self._before(event)
        call = self._call_for(event, at)
        if call is None:
            return
        call.ringing.pop(field_str(event, "Interface", 128) or "?", None)
        if call.state == "ringing" and not call.ringing:
            call.state = "queued"
        self._changed(call, before)

    def _on_agent_connect(self, event: AmiEvent, at: datetime) -> None:
        before = self._before(event)
        call = self._call_for(event, at)
        if call is None:
            return
        if call.facts.answered_at == at:  # this AgentConnect is the call's first
            call.queue = field_str(event, "Queue", 128) or call.queue
        call.state = "connected"
        call.ringing.clear()
        self._changed(call, before)
        queue = self.queues.get(call.queue or "")
        uid = field_id(event, "Uniqueid")
        if queue is not None and uid and queue.waiting.pop(uid, None) is not None:
            self._publish_queue(queue)

    def _on_bridge_enter(self, event: AmiEvent, at: datetime) -> None:
        before = self._before(event)
        call = self._call_for(event, at)
        if call is None:
            return
        if to_int(field_str(event, "BridgeNumChannels"), 0) >= 2 and call.state != "connected":
            call.state = "connected"
            call.bridged_at = call.bridged_at or at
            call.ringing.clear()
        self._changed(call, before)

    def _on_hangup(self, event: AmiEvent, at: datetime) -> None:
        """The call ends when its caller hangs up, or when every leg it showed has."""
        linkedid = linkedid_of(event)
        call = self.calls.get(linkedid) if linkedid else None
        if call is None or not field_id(event, "Uniqueid"):
            return
        fold_event(call.facts, event, at, self._received_at)
        if call.caller_hung_up() or all_legs_hung_up(call.facts):
            self._end(call, at)

    def _end(self, call: LiveCall, at: datetime) -> None:
        self.calls.pop(call.linkedid, None)
        self._recently_ended[call.linkedid] = None
        while len(self._recently_ended) > RECENTLY_ENDED_MAX:
            self._recently_ended.popitem(last=False)
        self._publish({"type": "call", "action": "end", "call": call.view(ended_at=at)})
        for queue in self.queues.values():
            gone = [uid for uid, w in queue.waiting.items() if w.linkedid == call.linkedid]
            for uid in gone:
                del queue.waiting[uid]
            if gone:
                self._publish_queue(queue)

    # ----------------------------------------------------------- queue events
    def _queue(self, name: str) -> LiveQueue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = LiveQueue(name)
        return queue

    def _publish_queue(self, queue: LiveQueue) -> None:
        self._publish({"type": "queue", "queue": self._queue_view(queue)})

    def _publish_queue_of(self, call: LiveCall) -> None:
        for queue in self.queues.values():
            if any(w.linkedid == call.linkedid for w in queue.waiting.values()):
                self._publish_queue(queue)

    def _on_member(self, event: AmiEvent, at: datetime) -> None:
        queue_name = field_str(event, "Queue", 128)
        interface = field_str(event, "Interface", 128) or field_str(event, "Location", 128)
        if not queue_name or not interface:
            return
        queue = self._queue(queue_name)
        member = queue.members.get(interface)
        before = member.view() if member else None
        if member is None:
            member = queue.members[interface] = LiveMember(interface)
        _update_member(member, event)
        if member.view() != before:
            self._publish(
                {"type": "member", "action": "update", "queue": queue_name, "member": member.view()}
            )

    def _on_member_removed(self, event: AmiEvent, at: datetime) -> None:
        queue = self.queues.get(field_str(event, "Queue", 128) or "")
        interface = field_str(event, "Interface", 128) or field_str(event, "Location", 128)
        if queue is None or not interface:
            return
        member = queue.members.pop(interface, None)
        if member is not None:
            event = {"type": "member", "action": "removed", "queue": queue.name}
            self._publish({**event, "member": member.view()})

    # -------------------------------------------------------- reconciliation
    def reconcile(self, snapshot: ChannelSnapshot) -> None:
        """Align with Asterisk's channel list (the rule: :class:`ChannelSnapshot`).

        Calls whose channels are all gone end (unless heard of after the snapshot was
        asked for); calls in progress that we did not know (started while we were
        away) appear.
        """
        now = _utcnow()
        for call in list(self.calls.values()):
            if snapshot.call_gone(call.linkedid, call.seen_at):
                self._end(call, now)
        for channel in snapshot.channels:
            linkedid = channel.linkedid
            if channel.uniqueid != linkedid:
                continue
            if linkedid in self.calls or linkedid in self._recently_ended:
                continue
            started = now - channel.duration if channel.duration is not None else now
            facts = CallFold(
                linkedid=linkedid,
                started_at=started,
                last_event_at=now,
                caller_number=channel.caller,
                channel=channel.channel,
                state={"legs": {linkedid: {"hungup": None}}},
            )
            call = LiveCall(facts)
            if channel.bridged:
                call.state = "connected"
            elif channel.application == "queue":
                call.state = "queued"
            self.calls[linkedid] = call
            self._publish({"type": "call", "action": "update", "call": call.view()})
        for channel in snapshot.channels:  # add the other legs of known calls
            known = self.calls.get(channel.linkedid)
            if known is not None:
                known.facts.legs.setdefault(channel.uniqueid, {"hungup": None})

    def seed_queues(self, events: Sequence[dict[str, Any]]) -> None:
        """Replace the queues with a ``QueueStatus`` answer (its list items)."""
        now = _utcnow()
        seen: dict[str, LiveQueue] = {}
        for event in events:
            kind = event.get("Event")
            name = field_str(event, "Queue", 128)
            if not name:
                continue
            queue = seen.get(name)
            if queue is None:
                queue = seen[name] = LiveQueue(name)
            if kind == "QueueMember":
                interface = field_str(event, "Location", 128) or field_str(event, "Interface", 128)
                if interface:
                    member = queue.members[interface] = LiveMember(interface)
                    _update_member(member, event)
            elif kind == "QueueEntry":
                uid = field_id(event, "Uniqueid")
                if not uid:
                    continue
                wait = to_int(field_str(event, "Wait"), 0)
                linkedid = next(
                    (
                        c.linkedid
                        for c in self.calls.values()
                        if c.has_leg(uid) or c.linkedid == uid
                    ),
                    uid,
                )
                since = now - timedelta(seconds=wait)
                queue.waiting[uid] = Waiting(uid, linkedid, since)
                call = self.calls.get(linkedid)
                if call is not None:
                    before = call.view()
                    call.queue = call.queue or name
                    call.facts.queue_entered_at = call.facts.queue_entered_at or since
                    if call.state == "ivr":
                        call.state = "queued"
                    self._changed(call, before)
        for name in set(self.queues) - set(seen):
            del self.queues[name]
        for name, queue in seen.items():
            self.queues[name] = queue
            self._publish_queue(queue)


def _update_member(member: LiveMember, event: AmiEvent) -> None:
    name = field_str(event, "MemberName", 128) or field_str(event, "Name", 128)
    if name:
        member.name = name
    if "Status" in event:
        member.device_state = to_int(field_str(event, "Status"), member.device_state)
    if "Paused" in event:
        member.paused = flag(field_str(event, "Paused"))
        member.paused_reason = field_str(event, "PausedReason", 128) if member.paused else None
    if "InCall" in event:
        member.in_call = flag(field_str(event, "InCall"))
    if "CallsTaken" in event:
        member.calls_taken = to_int(field_str(event, "CallsTaken"), member.calls_taken)
