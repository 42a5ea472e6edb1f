"""The live state a panel shows: read from the call tracker, filtered per viewer, and
turned into a first snapshot followed by changes.

The tracker (``core.live_calls``, the calls feature's runtime when AMI is on) keeps the state
and publishes every change to ``core.live``. A stream does not trust the
events' contents: an event only says "something changed", the stream re-reads the
tracker's snapshot, filters it for its viewer and sends what differs from what it
sent last. Bursts are coalesced, a lost event (hub overflow) heals itself on the
next one, and an agent can never be sent a call that is not theirs to see.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

from sac_ivr.auth.services import Identity
from sac_ivr.core import Core
from sac_ivr.live import LiveCalls
from sac_ivr.panels import schemas

log = logging.getLogger(__name__)

EMPTY_SNAPSHOT: dict[str, Any] = {"calls": [], "queues": {}}

Message = tuple[str, dict[str, Any]]  # (SSE event name, JSON data)


def tracker_of(core: Core) -> LiveCalls | None:
    return core.live_calls


async def read_snapshot(core: Core) -> dict[str, Any]:
    """The tracker's snapshot; no tracker (AMI off) is an empty call center."""
    tracker = tracker_of(core)
    if tracker is None:
        return EMPTY_SNAPSHOT
    snapshot = tracker.snapshot()
    if inspect.isawaitable(snapshot):
        snapshot = await snapshot
    return snapshot if isinstance(snapshot, dict) else EMPTY_SNAPSHOT


def server_time(now: datetime | None = None) -> str:
    return schemas.iso_utc(now or datetime.now(UTC)) or ""


class LiveView:
    """What one viewer was last sent, and how to bring them up to date."""

    def __init__(self, core: Core, identity: Identity, view: str = "agent") -> None:
        self.core = core
        self.identity = identity
        self.view = view
        self.opts = schemas.ViewOptions.of(identity, view, core.settings.panels_mask_queue_callers)
        self.calls: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.ami_connected = False
        self._link = False

    async def _read(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]] | None:
        try:
            snapshot = await read_snapshot(self.core)
        except Exception:
            log.exception("call tracker snapshot failed; the panels keep the last state")
            return None
        self._link = bool(snapshot.get("ami_connected", tracker_of(self.core) is not None))
        return schemas.live_view(snapshot, self.opts, datetime.now(UTC))

    async def snapshot(self) -> dict[str, Any]:
        """The full state, and remember it as sent."""
        read = await self._read()
        if read is not None:
            self.calls, self.queues = read
            self.ami_connected = self._link
        return {
            "server_time": server_time(),
            "view": self.view,
            "ami": tracker_of(self.core) is not None,
            "ami_connected": self.ami_connected,
            "max_wait_s": self.core.settings.panels_max_wait_s,
            "heartbeat_s": self.core.settings.panels_heartbeat_s,
            "viewer": schemas.viewer_view(self.identity),
            "calls": sorted(self.calls.values(), key=_call_order),
            "queues": sorted(self.queues.values(), key=lambda q: q["name"]),
        }

    async def changes(self) -> list[Message]:
        """What changed since the last snapshot/changes, as SSE messages."""
        read = await self._read()
        if read is None:
            return []
        calls, queues = read
        now = server_time()
        out: list[Message] = []
        if self._link != self.ami_connected:
            self.ami_connected = self._link
            out.append(("link", {"server_time": now, "ami_connected": self._link}))
        for key in sorted(self.calls.keys() - calls.keys()):
            gone = self.calls[key]
            removed = {"server_time": now, "server": gone["server"], "linkedid": gone["linkedid"]}
            out.append(("call_removed", removed))
        for key, call in sorted(calls.items(), key=lambda kv: _call_order(kv[1])):
            if self.calls.get(key) != call:
                out.append(("call", {"server_time": now, "call": call}))
        for name in sorted(self.queues.keys() - queues.keys()):
            out.append(("queue_removed", {"server_time": now, "name": name}))
        for name, queue in sorted(queues.items()):
            if self.queues.get(name) != queue:
                out.append(("queue", {"server_time": now, "queue": queue}))
        self.calls, self.queues = calls, queues
        return out


def _call_order(call: dict[str, Any]) -> tuple[str, str]:
    return (call.get("entered_queue_at") or call.get("answered_at") or "~", call["linkedid"])


async def live_messages(
    core: Core, identity: Identity, view: str, heartbeat_s: float, stop: asyncio.Event
) -> AsyncGenerator[Message, None]:
    """A snapshot, then changes as they happen, with a heartbeat when nothing does.

    Subscribes before reading the snapshot, so a change that happens in between is
    not lost. Ends when ``stop`` is set (shutdown).
    """
    live = LiveView(core, identity, view)
    async with core.live.subscribe() as events:
        yield "snapshot", await live.snapshot()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                getting = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait(
                    {getting, stopping}, timeout=heartbeat_s, return_when=asyncio.FIRST_COMPLETED
                )
                if getting not in done:
                    getting.cancel()
                    if stopping in done:
                        return
                    yield "heartbeat", {"server_time": server_time()}
                    continue
                while not events.empty():  # coalesce a burst into one re-read
                    events.get_nowait()
                for message in await live.changes():
                    yield message
        finally:
            stopping.cancel()
