"""Live call and queue state (CallTracker) from the same AMI traces, and what it
publishes on core.live."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from sac_ivr.calls.tracker import CallTracker
from tests.calls_stack import ANSWERED, MIDCALL, Stack, start_stack, stop_stack
from tests.fakeasterisk.ami import load_trace


@pytest.fixture
async def stack(sqlite_url: str) -> AsyncIterator[Stack]:
    # The tracker is in memory: one database backend is enough here.
    running = await start_stack(sqlite_url)
    yield running
    await stop_stack(running)


@contextlib.asynccontextmanager
async def recording(stack: Stack) -> AsyncIterator[list[dict[str, Any]]]:
    """Collects what the tracker publishes on core.live while the block runs."""
    published: list[dict[str, Any]] = []
    async with stack.core.live.subscribe() as queue:
        yield published
        await asyncio.sleep(0)
        while not queue.empty():
            published.append(queue.get_nowait())


def upto(events: list[dict[str, str]], name: str, nth: int = 1) -> int:
    """Index just after the nth event called ``name``."""
    seen = 0
    for i, event in enumerate(events):
        if event["Event"] == name:
            seen += 1
            if seen == nth:
                return i + 1
    raise AssertionError(f"no {name} #{nth}")


def member(snapshot: dict[str, Any], interface: str) -> dict[str, Any]:
    queue = snapshot["queues"]["sac-agents"]
    return next(m for m in queue["members"] if m["interface"] == interface)


async def test_queues_are_seeded_from_queuestatus_on_connect(stack: Stack) -> None:
    snapshot = stack.feature.snapshot()
    assert snapshot["ami_connected"] is True
    queue = snapshot["queues"]["sac-agents"]
    assert queue["calls_waiting"] == 0 and queue["longest_wait_s"] is None
    statuses = {m["name"]: (m["status"], m["paused_reason"]) for m in queue["members"]}
    assert statuses == {
        "Maria Silva": ("available", None),
        "João Souza": ("paused", "almoço"),
        "Ana Lima": ("unavailable", None),
    }
    json.dumps(snapshot)  # JSON-able as it is


async def test_a_call_goes_ivr_queued_ringing_connected_then_away(stack: Stack) -> None:
    events = load_trace("queue_answered.ami")
    steps = [
        (upto(events, "VarSet", 3), "ivr", 0),
        (upto(events, "QueueCallerJoin"), "queued", 1),
        (upto(events, "AgentCalled"), "ringing", 1),
        (upto(events, "AgentConnect"), "connected", 0),  # no longer waiting
        (upto(events, "QueueCallerLeave"), "connected", 0),
    ]
    done = 0
    for end, state, waiting in steps:
        await stack.push(events[done:end])
        done = end
        snapshot = stack.feature.snapshot()
        (call,) = snapshot["calls"]
        assert (call["linkedid"], call["state"]) == (ANSWERED, state)
        assert snapshot["queues"]["sac-agents"]["calls_waiting"] == waiting
    assert call["protocol"] == "202411220000181"
    assert call["caller"] == "11987654321" and call["caller_e164"] == "+5511987654321"
    assert call["channel"] == "PJSIP/trunk-00000001"
    assert call["queue"] == "sac-agents"
    assert call["agent_interface"] == call["agent"] == "PJSIP/agent1"
    assert call["agent_name"] == "Maria Silva"
    assert call["entered_queue_at"] == datetime.fromtimestamp(1732280010.1, UTC).isoformat()
    assert call["answered_at"] == datetime.fromtimestamp(1732280013.6, UTC).isoformat()
    assert member(stack.feature.snapshot(), "PJSIP/agent1")["status"] == "busy"
    await stack.push(events[done:])
    snapshot = stack.feature.snapshot()
    assert snapshot["calls"] == []
    assert member(snapshot, "PJSIP/agent1")["status"] == "available"
    assert member(snapshot, "PJSIP/agent1")["calls_taken"] == 1


async def test_while_ringing_the_call_names_the_agent_rung(stack: Stack) -> None:
    events = load_trace("queue_answered.ami")
    await stack.push(events[: upto(events, "AgentCalled")])
    (call,) = stack.feature.snapshot()["calls"]
    assert call["state"] == "ringing"
    assert call["ringing"] == ["PJSIP/agent1"] and call["agent"] == "PJSIP/agent1"
    assert call["agent_interface"] is None and call["answered_at"] is None
    queue = stack.feature.snapshot()["queues"]["sac-agents"]
    assert [w["linkedid"] for w in queue["waiting"]] == [ANSWERED]
    assert queue["waiting"][0]["protocol"] == "202411220000181"
    assert queue["oldest_entered_at"] == queue["waiting"][0]["entered_queue_at"]
    assert queue["longest_wait_s"] is not None and queue["longest_wait_s"] > 0


async def test_every_change_is_published_with_the_documented_shapes(stack: Stack) -> None:
    async with recording(stack) as published:
        await stack.push_trace("queue_answered.ami")
    calls = [e for e in published if e["type"] == "call"]
    assert [(e["action"], e["call"]["state"]) for e in calls][-1] == ("end", "connected")
    states = [e["call"]["state"] for e in calls if e["action"] == "update"]
    assert [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s] == [
        "ivr",
        "queued",
        "ringing",
        "connected",
    ]
    assert calls[-1]["call"]["ended_at"] is not None
    assert set(calls[0]["call"]) == {
        "linkedid",
        "channel",
        "protocol",
        "caller",
        "caller_e164",
        "state",
        "queue",
        "started_at",
        "entered_queue_at",
        "answered_at",
        "agent_interface",
        "agent_name",
        "agent",
        "ringing",
        "ended_at",
    }
    members = [e for e in published if e["type"] == "member"]
    assert {e["action"] for e in members} == {"update"}
    assert [e["member"]["status"] for e in members] == ["busy", "busy", "available"]
    assert all(e["queue"] == "sac-agents" for e in members)
    queues = [e["queue"]["calls_waiting"] for e in published if e["type"] == "queue"]
    assert queues[0] == 1 and queues[-1] == 0
    json.dumps(published)


async def test_duplicate_events_publish_no_call_change(stack: Stack) -> None:
    await stack.push_trace("queue_answered.ami")
    before = stack.feature.snapshot()
    async with recording(stack) as published:
        await stack.push_trace("queue_answered.ami")  # an ended call must not come back
    assert [e for e in published if e["type"] == "call"] == []
    after = stack.feature.snapshot()
    assert after["calls"] == before["calls"] == []
    assert after["queues"] == before["queues"]


async def test_member_events_update_add_and_remove(stack: Stack) -> None:
    base = {"Queue": "sac-agents", "Interface": "PJSIP/agent4", "MemberName": "Bia Costa"}
    async with recording(stack) as published:
        await stack.push(
            [
                {"Event": "QueueMemberAdded", **base, "Status": "1", "Paused": "0"},
                {"Event": "QueueMemberPause", **base, "Paused": "1", "PausedReason": "pausa"},
                {"Event": "QueueMemberPause", **base, "Paused": "1", "PausedReason": "pausa"},
                {"Event": "QueueMemberPause", **base, "Paused": "0", "PausedReason": ""},
                {"Event": "QueueMemberStatus", **base, "Status": "5", "Paused": "0"},
                {"Event": "QueueMemberRemoved", **base},
            ]
        )
    changes = [(e["action"], e["member"]["status"]) for e in published if e["type"] == "member"]
    assert changes == [
        ("update", "available"),
        ("update", "paused"),
        ("update", "available"),
        ("update", "unavailable"),
        ("removed", "unavailable"),
    ]
    interfaces = [
        m["interface"] for m in stack.feature.snapshot()["queues"]["sac-agents"]["members"]
    ]
    assert "PJSIP/agent4" not in interfaces


async def test_link_state_is_published_and_in_the_snapshot(stack: Stack) -> None:
    async with recording(stack) as published:
        stack.fake.channels = []
        await stack.fake.drop()
        await stack.wait_synced(2)
    links = [e["connected"] for e in published if e["type"] == "link"]
    assert links == [False, True]
    assert stack.feature.snapshot()["ami_connected"] is True


async def test_a_call_in_progress_before_we_connected_appears(sqlite_url: str) -> None:
    running = await start_stack(sqlite_url)
    try:
        running.fake.channels = [
            {
                "Channel": "PJSIP/trunk-00000005",
                "Uniqueid": MIDCALL,
                "Linkedid": MIDCALL,
                "CallerIDNum": "11976543210",
                "Application": "Queue",
                "BridgeId": "",
                "Duration": "00:01:05",
            }
        ]
        running.fake.queue_status = [
            *load_trace("queuestatus.ami"),
            {
                "Event": "QueueEntry",
                "Queue": "sac-agents",
                "Position": "1",
                "Channel": "PJSIP/trunk-00000005",
                "Uniqueid": MIDCALL,
                "CallerIDNum": "11976543210",
                "Wait": "40",
            },
        ]
        await running.fake.drop()
        await running.wait_synced(2)
        snapshot = running.feature.snapshot()
        (call,) = snapshot["calls"]
        assert call["linkedid"] == MIDCALL and call["state"] == "queued"
        assert call["caller_e164"] == "+5511976543210"
        queue = snapshot["queues"]["sac-agents"]
        assert queue["calls_waiting"] == 1 and queue["longest_wait_s"] >= 40
        assert call["entered_queue_at"] == queue["oldest_entered_at"]
    finally:
        await stop_stack(running)


def test_tracker_ignores_garbage_without_raising() -> None:
    published: list[dict[str, Any]] = []
    tracker = CallTracker(published.append)
    for event in [
        {},
        {"Event": None},
        {"Event": ["Hangup", "Hangup"]},
        {"Event": "Hangup"},
        {"Event": "QueueCallerJoin", "Linkedid": "1.1", "Uniqueid": "1.1"},  # no queue
        {"Event": "QueueMemberStatus", "Queue": "q"},  # no interface
        {"Event": "AgentConnect", "Linkedid": "x" * 500, "Timestamp": "nan?"},
        *load_trace("noise.ami"),
    ]:
        tracker.handle_event(event)
    snapshot = tracker.snapshot()
    assert snapshot["queues"] == {}
    assert all(c["linkedid"] != "x" * 500 for c in snapshot["calls"])
    json.dumps(snapshot)
