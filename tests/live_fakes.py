"""Test doubles for the panels' live data: a call tracker with ``snapshot()`` and a
reader of Server-Sent Events.

``FakeTracker`` follows the contract of ``sac_ivr.calls.tracker.CallTracker``: it is
installed as ``services.extras["calls"]`` and every change is announced on
``services.live`` (the stream re-reads the snapshot on any event).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from sac_ivr.services import Services


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


@dataclass
class FakeTracker:
    services: Services | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy({"calls": self.calls, "queues": self.queues})

    @classmethod
    def install(cls, services: Services) -> FakeTracker:
        tracker = cls(services=services)
        services.extras["calls"] = tracker
        return tracker

    def publish(self, kind: str = "call", **data: Any) -> None:
        assert self.services is not None
        self.services.live.publish({"type": kind, **data})

    # -- changes, each published like the real tracker does
    def add_member(self, queue: str, interface: str, name: str, status: str = "available") -> None:
        q = self.queues.setdefault(queue, {"members": [], "waiting": [], "longest_wait_s": 0})
        q["members"] = [m for m in q["members"] if m["interface"] != interface]
        q["members"].append({"interface": interface, "name": name, "status": status})
        self.publish("member", queue=queue, interface=interface, status=status)

    def enter_queue(
        self,
        linkedid: str,
        protocol: str | None,
        caller_e164: str,
        queue: str = "sac-agents",
        waited_s: float = 5.0,
    ) -> dict[str, Any]:
        call = {
            "linkedid": linkedid,
            "protocol": protocol,
            "caller": caller_e164.removeprefix("+55"),
            "caller_e164": caller_e164,
            "queue": queue,
            "state": "queued",
            "entered_queue_at": ago(waited_s),
            "answered_at": None,
            "agent": None,
            "agent_name": None,
            "channel": f"PJSIP/trunk-{linkedid}",
        }
        self.calls = [c for c in self.calls if c["linkedid"] != linkedid] + [call]
        q = self.queues.setdefault(queue, {"members": [], "waiting": [], "longest_wait_s": 0})
        q["waiting"].append(linkedid)
        self.publish("call", linkedid=linkedid, state="queued")
        return call

    def ring(self, linkedid: str, agent: str, agent_name: str) -> None:
        call = self._call(linkedid)
        call.update(state="ringing", agent=agent, agent_name=agent_name)
        self.publish("call", linkedid=linkedid, state="ringing")

    def connect(self, linkedid: str) -> None:
        call = self._call(linkedid)
        call.update(state="connected", answered_at=datetime.now(UTC).isoformat())
        for q in self.queues.values():
            if linkedid in q["waiting"]:
                q["waiting"].remove(linkedid)
        self.publish("call", linkedid=linkedid, state="connected")

    def hangup(self, linkedid: str) -> None:
        self.calls = [c for c in self.calls if c["linkedid"] != linkedid]
        for q in self.queues.values():
            if linkedid in q["waiting"]:
                q["waiting"].remove(linkedid)
        self.publish("call", linkedid=linkedid, state="gone")

    def _call(self, linkedid: str) -> dict[str, Any]:
        return next(c for c in self.calls if c["linkedid"] == linkedid)


class SseReader:
    """Reads ``event:``/``data:`` messages from an open text/event-stream response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.retry: int | None = None

    async def next(self, skip: tuple[str, ...] = ("heartbeat",)) -> tuple[str, dict[str, Any]]:
        """The next message whose event is not in ``skip``."""
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
