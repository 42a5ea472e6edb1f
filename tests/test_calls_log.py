"""The call log built from AMI events: recorded traces replayed by a fake Asterisk
Manager on a real socket, stored on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from sac_ivr.calls.calllog import HANDLED_EVENTS, RECONCILED_TEXT, apply_event, new_call
from sac_ivr.calls.events import event_time, linkedid_of
from sac_ivr.calls.schemas import call_view
from sac_ivr.calls.tables import AmiFollower, CallLog
from sac_ivr.protocols.tables import Protocol
from tests.calls_stack import (
    ABANDONED,
    ANSWERED,
    MIDCALL,
    T_ABANDONED,
    T_ANSWERED,
    T_MIDCALL,
    Stack,
    close_to,
    start_stack,
    stop_stack,
    without,
)
from tests.fakeasterisk.ami import load_trace, wait_until


@pytest.fixture
async def stack(db_url: str) -> AsyncIterator[Stack]:
    running = await start_stack(db_url)
    yield running
    await stop_stack(running)


def assert_answered_call(view: dict, row: CallLog) -> None:
    t = T_ANSWERED
    assert view["linkedid"] == ANSWERED
    assert view["caller_number"] == "11987654321"
    assert view["caller_e164"] == "+5511987654321"
    assert view["called_number"] == "08001234567"
    assert view["channel"] == "PJSIP/trunk-00000001"
    assert view["protocol"] == "202411220000181"
    assert close_to(row.started_at, t)
    assert close_to(row.line_answered_at, t + 0.012)
    assert view["queue"] == "sac-agents"
    assert close_to(row.queue_entered_at, t + 10.0)
    assert close_to(row.answered_at, t + 13.5)
    assert close_to(row.queue_left_at, t + 13.501)
    assert view["wait_s"] == pytest.approx(3.5, abs=0.001)
    assert view["agent_interface"] == "PJSIP/agent1"
    assert view["agent_name"] == "Maria Silva"
    assert view["talk_s"] == 45.0
    assert view["transfers"] == []
    assert close_to(row.ended_at, t + 58.55)
    assert view["duration_s"] == pytest.approx(58.55, abs=0.001)
    assert view["hangup_cause"] == 16
    assert view["hangup_cause_text"] == "Normal Clearing"
    assert view["recording_file"] == "/var/spool/asterisk/monitor/sac-1732280000.1.wav"
    assert view["outcome"] == "answered"
    assert view["reconciled"] is False


async def test_queued_call_answered_by_an_agent(stack: Stack) -> None:
    await stack.push_trace("queue_answered.ami")
    rows = await stack.rows()
    assert [r.linkedid for r in rows] == [ANSWERED]
    assert_answered_call(call_view(rows[0]), rows[0])


async def test_call_abandoned_in_the_queue(stack: Stack) -> None:
    await stack.push_trace("queue_abandoned.ami")
    row = await stack.row(ABANDONED)
    view = call_view(row)
    t = T_ABANDONED
    assert view["caller_e164"] == "+552133334444"
    assert view["protocol"] == "202411220000197"
    assert view["outcome"] == "abandoned"
    assert view["answered_at"] is None and view["agent_name"] is None
    assert close_to(row.queue_entered_at, t + 10.0)
    assert close_to(row.queue_left_at, t + 30.001)
    assert view["wait_s"] == pytest.approx(20.001, abs=0.001)
    assert view["talk_s"] is None
    assert close_to(row.ended_at, t + 30.03)
    # The caller's own hangup cause, not the rung agent leg's (Cause 0)
    assert (view["hangup_cause"], view["hangup_cause_text"]) == (16, "Normal Clearing")
    assert view["recording_file"] is None


async def test_the_same_events_twice_change_nothing(stack: Stack) -> None:
    await stack.push_trace("queue_answered.ami")
    first = await stack.row(ANSWERED)
    await stack.push_trace("queue_answered.ami")
    await stack.push(load_trace("queue_answered.ami")[::3])  # and some a third time
    rows = await stack.rows()
    assert len(rows) == 1
    assert call_view(rows[0]) == call_view(first)
    assert rows[0].state["legs"].keys() == first.state["legs"].keys()
    assert_answered_call(call_view(rows[0]), rows[0])


async def test_events_out_of_order_give_the_same_record(stack: Stack) -> None:
    events = load_trace("queue_answered.ami")
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    await stack.push(shuffled)
    row = await stack.row(ANSWERED)
    assert_answered_call(call_view(row), row)
    abandoned = load_trace("queue_abandoned.ami")[::-1]
    await stack.push(abandoned)
    assert (await stack.view(ABANDONED))["outcome"] == "abandoned"


@pytest.mark.parametrize("trace", ["queue_answered.ami", "queue_abandoned.ami"])
def test_any_order_and_any_repetition_merge_to_the_same_record(trace: str) -> None:
    """The merge itself, without a socket: 40 permutations with duplicates."""
    events = load_trace(trace)
    received = datetime(2024, 11, 22, 13, 0, tzinfo=UTC)

    def build(sequence: list[dict[str, str]]) -> dict:
        row: CallLog | None = None
        for event in sequence:
            if event["Event"] not in HANDLED_EVENTS or linkedid_of(event) is None:
                continue  # what CallLogWriter.feed() filters out
            moment = event_time(event, received)
            if row is None:
                row = new_call(event["Linkedid"], moment, received)
            apply_event(row, event, moment, received)
        assert row is not None
        view = call_view(row)
        view.pop("caller_masked")
        return view

    expected = build(events)
    rng = random.Random(2024)
    for _ in range(40):
        sequence = events + rng.sample(events, k=len(events) // 3)
        rng.shuffle(sequence)
        assert build(sequence) == expected
    assert build(events[::-1]) == expected


async def test_unknown_events_and_garbage_are_ignored(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="sac_ivr.calls.writer")
    await stack.push_trace("noise.ami")
    await stack.push_trace("queue_answered.ami")
    await stack.push_trace("noise.ami")
    rows = await stack.rows()
    assert [r.linkedid for r in rows] == [ANSWERED]  # no row for the noise's linkedids
    assert_answered_call(call_view(rows[0]), rows[0])
    assert stack.fake.connections_made == 1 and stack.client.connected
    assert "ignoring event 'RTCPSent'" in caplog.text
    assert "ignoring Hangup without a usable Linkedid" in caplog.text


async def test_a_call_without_timestamps_uses_the_time_events_arrive(stack: Stack) -> None:
    events = [
        {k: v for k, v in e.items() if k != "Timestamp"} for e in load_trace("queue_abandoned.ami")
    ]
    before = datetime.now(UTC)
    await stack.push(events)
    row = await stack.row(ABANDONED)
    assert row.outcome == "abandoned" and row.hangup_cause == 16
    assert row.ended_at is not None and row.ended_at >= before
    assert row.queue_entered_at is not None and row.started_at <= row.queue_entered_at


async def test_transfers_are_listed_once(stack: Stack) -> None:
    events = load_trace("reconnect_before.ami")
    transfer = {
        "Event": "BlindTransfer",
        "Timestamp": f"{T_MIDCALL + 30:.6f}",
        "Result": "Success",
        "TransfererChannel": "PJSIP/agent2-00000006",
        "TransfererUniqueid": "1732280210.6",
        "TransfererLinkedid": MIDCALL,
        "TransfereeChannel": "PJSIP/trunk-00000005",
        "TransfereeUniqueid": MIDCALL,
        "TransfereeLinkedid": MIDCALL,
        "IsExternal": "No",
        "Context": "sac-transfer",
        "Extension": "2000",
    }
    await stack.push([*events, transfer, transfer])
    await stack.push([transfer])
    view = await stack.view(MIDCALL)
    assert view["transfers"] == [
        {
            "at": datetime.fromtimestamp(T_MIDCALL + 30, UTC).isoformat(),
            "kind": "blind",
            "by": "PJSIP/agent2-00000006",
            "to": "2000@sac-transfer",
            "result": "Success",
        }
    ]
    assert view["outcome"] == "in_progress"


# -- protocols <-> calls ----------------------------------------------------------------
async def add_protocol(
    stack: Stack, number: str, uniqueid: str | None, linkedid: str | None = None
) -> None:
    async with stack.core.sessionmaker() as session, session.begin():
        session.add(
            Protocol(
                number=number,
                issue_date=date(2024, 11, 22),
                caller_number="11987654321",
                uniqueid=uniqueid,
                linkedid=linkedid,
                status="open",
            )
        )


async def protocol(stack: Stack, number: str) -> Protocol:
    async with stack.core.sessionmaker() as session:
        found = await session.scalar(select(Protocol).where(Protocol.number == number))
    assert found is not None
    return found


async def test_the_protocol_learns_its_calls_linkedid(stack: Stack) -> None:
    await add_protocol(stack, "202411220000181", ANSWERED)
    await stack.push_trace("queue_answered.ami")
    assert (await protocol(stack, "202411220000181")).linkedid == ANSWERED


async def test_without_the_varset_the_protocol_is_found_by_uniqueid(stack: Stack) -> None:
    await add_protocol(stack, "202411220000197", ABANDONED)
    events = without(load_trace("queue_abandoned.ami"), Event="VarSet")
    await stack.push(events)
    assert (await stack.view(ABANDONED))["protocol"] == "202411220000197"
    assert (await protocol(stack, "202411220000197")).linkedid == ABANDONED


async def test_without_the_varset_the_protocol_is_found_by_linkedid(stack: Stack) -> None:
    await add_protocol(stack, "202411220000203", "1732280299.77", linkedid=MIDCALL)
    await stack.push(without(load_trace("reconnect_before.ami"), Event="VarSet"))
    assert (await stack.view(MIDCALL))["protocol"] == "202411220000203"


async def test_a_protocol_committed_after_its_varset_is_still_linked(stack: Stack) -> None:
    events = load_trace("queue_answered.ami")
    await stack.push(events)
    await add_protocol(stack, "202411220000181", None)
    await stack.push(events[-1:])  # any later event of the call (here a duplicate)
    assert (await protocol(stack, "202411220000181")).linkedid == ANSWERED


async def test_the_answering_agent_is_named_on_the_protocol_once(stack: Stack) -> None:
    await add_protocol(stack, "202411220000181", ANSWERED)
    await stack.push_trace("queue_answered.ami")
    await stack.push_trace("queue_answered.ami")  # duplicates add no second entry
    async with stack.core.sessionmaker() as session:
        found = await session.scalar(
            select(Protocol)
            .where(Protocol.number == "202411220000181")
            .options(selectinload(Protocol.events))
        )
    assert found is not None and found.agent == "Maria Silva"
    answered = [e for e in found.events if e.kind == "answered"]
    assert len(answered) == 1
    assert answered[0].data["agent_interface"] == "PJSIP/agent1"
    assert close_to(answered[0].at, T_ANSWERED + 13.5)


# -- reconciliation ---------------------------------------------------------------------
async def test_a_call_that_ends_while_the_link_is_down_is_closed_after_reconnect(
    stack: Stack,
) -> None:
    await stack.push_trace("reconnect_before.ami")
    assert (await stack.view(MIDCALL))["outcome"] == "in_progress"
    assert [c["linkedid"] for c in stack.feature.snapshot()["calls"]] == [MIDCALL]
    stack.fake.channels = []  # the call ended while we could not hear it
    await stack.fake.drop()
    await stack.wait_synced(2)
    row = await stack.row(MIDCALL)
    assert row.ended_at is not None and row.ended_at == stack.client.link_lost_at
    assert row.reconciled is True
    assert row.hangup_cause is None and row.hangup_cause_text == RECONCILED_TEXT
    assert row.outcome == "answered" and row.agent_name == "João Souza"
    assert row.duration_s == pytest.approx((row.ended_at - row.started_at).total_seconds())
    assert stack.feature.reconciled_calls == 1
    assert stack.feature.snapshot()["calls"] == []


async def test_a_call_that_survives_the_reconnect_stays_open_and_ends_normally(
    stack: Stack,
) -> None:
    await stack.push_trace("reconnect_before.ami")
    stack.fake.channels = [
        {
            "Channel": "PJSIP/trunk-00000005",
            "Uniqueid": MIDCALL,
            "Linkedid": MIDCALL,
            "CallerIDNum": "11976543210",
            "Application": "Queue",
            "BridgeId": "6b1c7e0e-9a41-4b51-8d7e-1b2f0e9a5c11",
            "Duration": "00:00:20",
        },
        {
            "Channel": "PJSIP/agent2-00000006",
            "Uniqueid": "1732280210.6",
            "Linkedid": MIDCALL,
            "Application": "AppQueue",
            "BridgeId": "6b1c7e0e-9a41-4b51-8d7e-1b2f0e9a5c11",
            "Duration": "00:00:06",
        },
    ]
    await stack.fake.drop()
    await stack.wait_synced(2)
    await stack.feature.writer.flush()
    assert (await stack.view(MIDCALL))["outcome"] == "in_progress"
    assert stack.feature.snapshot()["calls"][0]["state"] == "connected"
    await stack.push_trace("reconnect_after.ami")
    row = await stack.row(MIDCALL)
    assert row.reconciled is False and row.hangup_cause == 16
    assert close_to(row.ended_at, T_MIDCALL + 13.5 + 45.02)
    assert stack.feature.snapshot()["calls"] == []


async def test_a_lost_hangup_is_closed_by_the_periodic_check_at_its_last_event(
    stack: Stack,
) -> None:
    events = load_trace("queue_answered.ami")
    last_hangup = max(i for i, e in enumerate(events) if e["Event"] == "Hangup")
    await stack.push(events[:last_hangup] + events[last_hangup + 1 :])
    assert (await stack.view(ANSWERED))["outcome"] == "in_progress"
    assert await stack.feature.reconcile() == 1  # Asterisk lists no channel any more
    row = await stack.row(ANSWERED)
    # No link was lost: the call ends at the last event heard from its caller's leg.
    assert close_to(row.ended_at, T_ANSWERED + 58.545)
    assert row.reconciled and row.outcome == "answered"
    # The agent leg's real hangup cause is kept
    assert (row.hangup_cause, row.hangup_cause_text) == (16, "Normal Clearing")
    assert await stack.feature.reconcile() == 0


async def test_calls_left_open_by_a_previous_process_are_closed_at_start(db_url: str) -> None:
    first = await start_stack(db_url)
    try:
        await first.push_trace("reconnect_before.ami")
    finally:
        await stop_stack(first)
    second = await start_stack(db_url)  # a new process; Asterisk has no such call
    try:
        row = await second.row(MIDCALL)
        assert row.reconciled and row.ended_at is not None
        # Not at its last event (T_MIDCALL + 13.602): the call was still up when the
        # first process stopped, which it recorded as it stopped (AmiFollower.alive_at).
        async with second.core.sessionmaker() as session:
            alive_at = await session.scalar(select(AmiFollower.alive_at))
        assert alive_at is not None and row.ended_at == alive_at
        assert row.ended_at.timestamp() > T_MIDCALL + 13.602
        ended_by = (await second.view(MIDCALL))["ended_by"]
        assert ended_by is not None and datetime.fromisoformat(ended_by) >= row.ended_at
    finally:
        await stop_stack(second)


async def test_a_hangup_seen_after_reconciliation_wins(stack: Stack) -> None:
    events = load_trace("queue_abandoned.ami")
    final = events[-1]
    await stack.push(events[:-1])
    await stack.feature.reconcile()
    assert (await stack.view(ABANDONED))["reconciled"] is True
    await stack.push([final])
    view = await stack.view(ABANDONED)
    assert view["reconciled"] is False and view["hangup_cause"] == 16


async def test_a_database_outage_delays_the_log_but_loses_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    writer = stack.feature.writer
    original = writer._store_once
    failures = {"left": 2}

    async def flaky(events: list) -> int:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("INSERT", {}, ConnectionError("database down"))
        return await original(events)

    monkeypatch.setattr(writer, "_store_once", flaky)
    monkeypatch.setattr(writer, "RETRY_MIN_S", 0.01)
    await stack.push_trace("queue_answered.ami")
    await wait_until(lambda: failures["left"] == 0)
    row = await stack.row(ANSWERED)
    assert_answered_call(call_view(row), row)
