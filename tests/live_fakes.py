"""Test doubles for the panels' live data: a call tracker with ``snapshot()`` and a
reader of Server-Sent Events.

``FakeTracker`` follows the contract of ``sac_ivr.calls.tracker.CallTracker``: it is
installed as ``core.extras["calls"]`` and every change is announced on
``core.live`` (the stream re-reads the snapshot on any event).
"""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from sac_ivr.core import Core


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


@dataclass
class FakeTracker:
    """Same snapshot and event shapes as ``sac_ivr.calls.tracker.CallTracker``."""

    core: Core | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    ami_connected: bool = True

    def snapshot(self) -> dict[str, Any]:
        queues = {name: self._queue_view(name) for name in sorted(self.queues)}
        return copy.deepcopy(
            {
                "ami_connected": self.ami_connected,
                "at": datetime.now(UTC).isoformat(),
                "calls": self.calls,
                "queues": queues,
            }
        )

    @classmethod
    def install(cls, core: Core) -> FakeTracker:
        tracker = cls(core=core)
        core.extras["calls"] = tracker
        return tracker

    def publish(self, event: dict[str, Any]) -> None:
        assert self.core is not None
        self.core.live.publish(event)

    # -- changes, each published like the real tracker does
    def set_link(self, connected: bool) -> None:
        self.ami_connected = connected
        self.publish({"type": "link", "connected": connected, "at": datetime.now(UTC).isoformat()})

    def add_member(
        self, queue: str, interface: str, name: str, status: str = "available", **extra: Any
    ) -> None:
        q = self._queue(queue)
        member = {
            "interface": interface,
            "name": name,
            "status": status,
            "paused": status == "paused",
            "paused_reason": None,
            "in_call": status == "busy",
            "device_state": {"available": 1, "busy": 2, "unavailable": 5}.get(status, 1),
            "calls_taken": 0,
            **extra,
        }
        q["members"][interface] = member
        self.publish({"type": "member", "action": "update", "queue": queue, "member": member})

    def enter_queue(
        self,
        linkedid: str,
        protocol: str | None,
        caller_e164: str | None,
        queue: str = "sac-agents",
        waited_s: float = 5.0,
    ) -> dict[str, Any]:
        entered = ago(waited_s)
        call = {
            "linkedid": linkedid,
            "channel": f"PJSIP/trunk-{linkedid}",
            "protocol": protocol,
            "caller": caller_e164.removeprefix("+55") if caller_e164 else None,
            "caller_e164": caller_e164,
            "state": "queued",
            "queue": queue,
            "started_at": ago(waited_s + 20),
            "entered_queue_at": entered,
            "answered_at": None,
            "agent_interface": None,
            "agent_name": None,
            "agent": None,
            "ringing": [],
            "ended_at": None,
        }
        self.calls = [c for c in self.calls if c["linkedid"] != linkedid] + [call]
        self._queue(queue)["waiting"][linkedid] = entered
        self._call_changed(call)
        self._queue_changed(queue)
        return call

    def ring(self, linkedid: str, *interfaces: str) -> None:
        call = self._call(linkedid)
        call.update(state="ringing", ringing=sorted(interfaces), agent=interfaces[-1])
        self._call_changed(call)

    def connect(self, linkedid: str, interface: str, name: str) -> None:
        call = self._call(linkedid)
        call.update(
            state="connected",
            answered_at=datetime.now(UTC).isoformat(),
            agent_interface=interface,
            agent_name=name,
            agent=interface,
            ringing=[],
        )
        self._call_changed(call)
        if self._queue(call["queue"])["waiting"].pop(linkedid, None):
            self._queue_changed(call["queue"])

    def hangup(self, linkedid: str) -> None:
        call = self._call(linkedid)
        self.calls.remove(call)
        self.publish({"type": "call", "action": "end", "call": call})
        for name, q in self.queues.items():
            if q["waiting"].pop(linkedid, None):
                self._queue_changed(name)

    # -- internals
    def _queue(self, name: str) -> dict[str, Any]:
        return self.queues.setdefault(name, {"members": {}, "waiting": {}})

    def _queue_view(self, name: str) -> dict[str, Any]:
        q = self._queue(name)
        waiting = sorted(q["waiting"].items(), key=lambda kv: kv[1])
        oldest = waiting[0][1] if waiting else None
        now = datetime.now(UTC)
        return {
            "name": name,
            "calls_waiting": len(waiting),
            "longest_wait_s": round((now - datetime.fromisoformat(oldest)).total_seconds(), 1)
            if oldest
            else None,
            "oldest_entered_at": oldest,
            "waiting": [
                {
                    "uniqueid": linkedid,
                    "linkedid": linkedid,
                    "caller_e164": self._call(linkedid)["caller_e164"],
                    "protocol": self._call(linkedid)["protocol"],
                    "entered_queue_at": since,
                }
                for linkedid, since in waiting
            ],
            "members": [q["members"][i] for i in sorted(q["members"])],
        }

    def _call_changed(self, call: dict[str, Any]) -> None:
        self.publish({"type": "call", "action": "update", "call": copy.deepcopy(call)})

    def _queue_changed(self, name: str) -> None:
        self.publish({"type": "queue", "queue": self._queue_view(name)})

    def _call(self, linkedid: str) -> dict[str, Any]:
        return next(c for c in self.calls if c["linkedid"] == linkedid)


class SseReader:
    """Reads ``event:``/``data:`` messages from an open text/event-stream response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.retry: int | None = None

    async def next(
        self, skip: tuple[str, ...] = ("heartbeat",), hang_guard_s: float = 30.0
    ) -> tuple[str, dict[str, Any]]:
        """The next message whose event is not in ``skip``.

        ``hang_guard_s`` only keeps a broken test from hanging; it measures nothing.
        """
        async with asyncio.timeout(hang_guard_s):
            while True:
                event, data = await self._read_one()
                if event not in skip:
                    return event, data

    async def _read_one(self) -> tuple[str, dict[str, Any]]:
        event, data_lines = "message", []
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("the event stream ended")
            line = raw.decode("utf-8").rstrip("\r\n")
            if line == "":
                if data_lines:
                    return event, json.loads("\n".join(data_lines))
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data_lines.append(value)
            elif name == "retry":
                self.retry = int(value)
