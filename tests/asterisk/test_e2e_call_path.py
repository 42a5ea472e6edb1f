"""The whole call path for real: Asterisk 22, the project's dialplan and sounds, and
the real ``sac-ivr serve`` (SQLite, AMI enabled as the sample's ``sac-ivr`` user).

Every call of the module is placed at once by one fixture (24 calls: 20 plain SIP
callers, a caller who presses 1, one who hangs up during the number, one who reaches
an agent, and an AMI-originated Local channel recorded with MixMonitor), so the module
lasts about as long as its longest call. What each caller heard is proven byte for
byte on the RTP Asterisk sent (or the MixMonitor WAV) against the stored protocol,
read from the service's SQLite file and from its HTTP API with an agent token made by
``sac-ivr token create``.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.asterisk.ami import AmiClient, Message
from tests.asterisk.audio import Heard, PromptLibrary, recording_to_ulaw, wait_file_settled
from tests.asterisk.instance import AsteriskInstance
from tests.asterisk.service import SacIvrService
from tests.asterisk.sipp import CallResult, Dtmf, SipAgent, SipCall

INTRO = "sac/protocol-intro"
OUTRO = "sac/protocol-outro"
REPEAT_OFFER = "sac/protocol-repeat-offer"
MENU = "sac/menu-main"
UNAVAILABLE = "sac/protocol-unavailable"
CROWD = 20
AGENT_NAME = "Ana Souza"
ORIGINATE_CALLER = "5511900000002"
CALLER_CHANNEL = "PJSIP/sac-test-caller-"


@dataclass
class Placed:
    """One call of the module and what came of it."""

    name: str
    caller_num: str
    call: SipCall | None = None  # None: the AMI-originated Local channel
    end_on: Callable[[Message], bool] | None = None  # AMI event after which we hang up
    end_delay: float = 1.0
    ended_by_test: Message | None = None
    result: CallResult | None = None
    audio: bytes = b""
    heard: list[Heard] = field(default_factory=list)
    protocol: dict[str, Any] | None = None  # its row in the protocols table
    hangup: Message | None = None  # Asterisk's Hangup event for the protocol's channel

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.heard]

    @property
    def number(self) -> str:
        assert self.protocol is not None, f"{self.name}: no protocol stored for {self.caller_num}"
        return str(self.protocol["number"])

    def explain(self) -> str:
        where = self.result.work_dir if self.result else ""
        protocol = self.protocol and self.protocol["number"]
        return f"{self.name} ({self.caller_num}): heard {self.names}; protocol {protocol}; {where}"


def announcement(number: str) -> list[str]:
    """Prompts of one whole reading (the silent sac/pause between groups can't be seen)."""
    return [INTRO, *(f"digits/{d}" for d in number), OUTRO]


def digits_of(heard: list[Heard]) -> str:
    return "".join(h.name.removeprefix("digits/") for h in heard if h.name.startswith("digits/"))


def _is(event: str, **fields: str) -> Callable[[Message], bool]:
    def match(e: Message) -> bool:
        return e.get("Event") == event and all(e.get(k) == v for k, v in fields.items())

    return match


def _entered_menu(caller_num: str) -> Callable[[Message], bool]:
    return _is("Newexten", Context="sac-menu", CallerIDNum=caller_num)


@dataclass
class E2E:
    service: SacIvrService
    token: str
    calls: dict[str, Placed]
    agent: CallResult
    agent_connect: Message | None
    log_rows: dict[str, dict[str, Any]]  # linkedid -> GET /api/v1/calls item

    def crowd(self) -> list[Placed]:
        return [c for name, c in self.calls.items() if name.startswith("crowd-")]


@pytest.fixture(scope="module")
def service(asterisk: AsteriskInstance) -> Iterator[SacIvrService]:
    """``sac-ivr serve`` for this module: AMI on, fresh SQLite, defaults otherwise."""
    svc = SacIvrService(asterisk, name="sac-ivr-e2e")
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def e2e(
    asterisk: AsteriskInstance,
    ami: AmiClient,
    prompts: PromptLibrary,
    service: SacIvrService,
    sipp_available: None,
) -> Iterator[E2E]:
    token = service.create_token("e2e-agent", "agent")
    since = ami.mark()
    calls: dict[str, Placed] = {}

    def sip(name: str, **kwargs: Any) -> Placed:
        call = SipCall(asterisk, prompts=prompts, **kwargs)
        placed = Placed(name, call.caller_num, call, end_on=_entered_menu(call.caller_num))
        calls[name] = placed
        return placed

    for i in range(CROWD):
        sip(f"crowd-{i:02d}")
    # 1 while the closing prompt plays: the whole number again
    sip("repeat", dtmf=[Dtmf("1", during=OUTRO, delay=0.5)])
    # the caller hangs up two seconds into the digits
    early = sip("hangup-early", hangup_after=prompts.duration(INTRO) + 2.0)
    early.end_on = None
    # 0 in the menu; the agent answers, the test hangs up a second into the bridge
    agent_caller = sip("agent", dtmf=[Dtmf("0", during=MENU, delay=0.5)])
    agent_caller.end_on = _is("AgentConnect", CallerIDNum=agent_caller.caller_num)
    # AMI Originate of a Local channel in µ-law, recorded by MixMonitor
    recording = asterisk.recordings_dir / "e2e-originate.wav"
    calls["originate"] = Placed(
        "originate", ORIGINATE_CALLER, end_on=_entered_menu(ORIGINATE_CALLER)
    )

    agent = SipAgent(asterisk, index=0, prompts=prompts).start()
    added = ami.action(
        "QueueAdd", Queue="sac-agents", Interface=agent.interface, MemberName=AGENT_NAME
    )
    assert added["Response"] == "Success", added
    try:
        for placed in calls.values():
            if placed.call is not None:
                placed.call.start()
        originate = ami.action(
            "Originate",
            Channel="Local/s@sac-test-record",
            Codecs="ulaw",
            Context="sac-test-listener",
            Exten="s",
            Priority="1",
            CallerID=f'"originate" <{ORIGINATE_CALLER}>',
            Variable=[f"SAC_TEST_RECORDING={recording}", "SAC_TEST_DURATION=120"],
            Async="true",
        )
        assert originate["Response"] == "Success", originate
        _end_calls(ami, calls, since, deadline=time.monotonic() + 90)

        for placed in calls.values():
            if placed.call is not None:
                placed.result = placed.call.wait(30)
                placed.audio = placed.result.audio
                placed.heard = prompts.find(placed.audio)
        agent_result = agent.wait(20)
        wait_file_settled(recording)
        placed = calls["originate"]
        placed.audio = recording_to_ulaw(recording) if recording.exists() else b""
        placed.heard = prompts.find(placed.audio, tail_tolerance=160)

        rows = _protocol_rows(service.database_path)
        for placed in calls.values():
            placed.protocol = rows.get(placed.caller_num)
            if placed.protocol is not None:
                placed.hangup = _first(
                    ami, since, _is("Hangup", Uniqueid=str(placed.protocol["uniqueid"]))
                )
        log_rows = _wait_call_log(service, token, calls)
        yield E2E(
            service=service,
            token=token,
            calls=calls,
            agent=agent_result,
            agent_connect=calls["agent"].ended_by_test,
            log_rows=log_rows,
        )
    finally:
        ami.action("QueueRemove", Queue="sac-agents", Interface=agent.interface)
        agent.stop()
        for placed in calls.values():
            if placed.call is not None:
                placed.call.stop()


def _first(ami: AmiClient, since: int, match: Callable[[Message], bool]) -> Message | None:
    found = ami.find_events(match, since)
    return found[0] if found else None


def _end_calls(ami: AmiClient, calls: dict[str, Placed], since: int, deadline: float) -> None:
    """Hang up (AMI) each call ``end_delay`` s after its ``end_on`` event; the others end
    by themselves. Returns when every call with an ``end_on`` was hung up (or its SIPp
    ended), or at the deadline (the tests then say which call never got there)."""
    seen: dict[str, tuple[Message, float]] = {}
    while time.monotonic() < deadline:
        pending = [
            p
            for p in calls.values()
            if p.end_on is not None
            and p.ended_by_test is None
            and (p.call is None or p.call.running())  # SIPp gone: nothing to wait for
        ]
        if not pending:
            return
        for placed in pending:
            assert placed.end_on is not None
            if placed.name not in seen:
                event = _first(ami, since, placed.end_on)
                if event is not None:
                    seen[placed.name] = (event, time.monotonic())
                continue
            event, at = seen[placed.name]
            if time.monotonic() - at >= placed.end_delay:
                ami.action("Hangup", Channel=event["Channel"], Cause="16")
                placed.ended_by_test = event
        time.sleep(0.05)


def _protocol_rows(database: Path) -> dict[str, dict[str, Any]]:
    """caller_number -> its protocols row, read straight from the service's SQLite file."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM protocols ORDER BY id")]
    by_caller: dict[str, dict[str, Any]] = {}
    for row in rows:
        assert row["caller_number"] not in by_caller, f"two protocols for one caller: {row}"
        by_caller[row["caller_number"]] = row
    return by_caller


def _wait_call_log(
    service: SacIvrService, token: str, calls: dict[str, Placed], timeout: float = 20.0
) -> dict[str, dict[str, Any]]:
    """GET /api/v1/calls until every call with a protocol has ended in the log."""
    wanted = {str(p.protocol["linkedid"]) for p in calls.values() if p.protocol is not None}
    deadline = time.monotonic() + timeout
    rows: dict[str, dict[str, Any]] = {}
    while True:
        answer = service.get("/api/v1/calls?limit=200", token)
        assert answer.status == 200, answer
        rows = {item["linkedid"]: item for item in answer.body["items"]}
        done = all(rows.get(linkedid, {}).get("ended_at") for linkedid in wanted)
        if done or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


# -- 1. one SIP call -----------------------------------------------------------------------


def test_sip_caller_hears_the_stored_number_after_the_intro(e2e: E2E) -> None:
    """Real SIP + RTP: the caller hears the intro, exactly the stored number digit by
    digit, the closing and the repeat offer, then the menu; nothing else."""
    placed = e2e.calls["crowd-00"]
    number = placed.number
    assert placed.names == [*announcement(number), REPEAT_OFFER, MENU], placed.explain()
    assert all(h.complete for h in placed.heard[:-1]), placed.explain()
    # the menu was cut by the test's hangup, after the announcement
    assert placed.ended_by_test is not None and placed.heard[-1].name == MENU
    # the HTTP API (agent token from `sac-ivr token create`) has the same number
    answer = e2e.service.get(f"/api/v1/protocols/{number}", e2e.token)
    assert answer.status == 200, answer
    assert answer.body["number"] == number
    assert answer.body["caller_number"] == placed.caller_num
    assert answer.body["caller_e164"] == "+55" + placed.caller_num
    assert answer.body["status"] == "open"
    # tied to the call: Asterisk's own linkedid for this channel
    varset = placed.ended_by_test
    assert answer.body["linkedid"] == varset["Linkedid"], (answer.body, varset)
    assert answer.body["channel"].startswith(CALLER_CHANNEL)


def test_anonymous_lookup_shows_no_personal_data(e2e: E2E) -> None:
    """The same number without a token: the public view only."""
    number = e2e.calls["crowd-01"].number
    answer = e2e.service.get(f"/api/v1/protocols/{number}")
    assert answer.status == 200, answer
    assert answer.body["number"] == number
    assert "caller_number" not in answer.body and "calls" not in answer.body


# -- 2. AMI Originate + MixMonitor ---------------------------------------------------------


def test_originated_local_call_recording_has_the_number(e2e: E2E) -> None:
    """A Local channel originated over AMI, recorded by MixMonitor: the WAV holds the
    intro and the stored digits in order, then the menu."""
    placed = e2e.calls["originate"]
    assert placed.audio, f"no recording: {placed.explain()}"
    number = placed.number
    assert placed.names == [*announcement(number), REPEAT_OFFER, MENU], placed.explain()
    assert digits_of([h for h in placed.heard if h.complete]) == number
    assert placed.protocol is not None
    assert placed.protocol["channel"].startswith("Local/s@sac-test-record-")


# -- 3. key 1 ------------------------------------------------------------------------------


def test_key_1_repeats_the_same_number(e2e: E2E) -> None:
    """RFC 4733 '1' during the closing prompt: the number is read again, whole and
    identical; then the repeat offer and the menu."""
    placed = e2e.calls["repeat"]
    assert placed.result is not None
    assert [d for d, _ in placed.result.sent_dtmf] == ["1"], placed.result.sent_dtmf
    number = placed.number
    first, second = announcement(number), announcement(number)
    assert placed.names == [*first, *second, REPEAT_OFFER, MENU], placed.explain()
    complete = [h for h in placed.heard if h.complete]
    assert digits_of(complete) == number * 2
    # the first closing was cut by the key; the second was heard whole
    outros = [h for h in placed.heard if h.name == OUTRO]
    assert [h.complete for h in outros] == [False, True], outros


# -- 4. 20 at once -------------------------------------------------------------------------


def test_simultaneous_calls_each_hear_their_own_number(e2e: E2E) -> None:
    """20 callers at once (plus the module's other 4 calls): 24 distinct numbers, each
    read in full to its own caller and no one else."""
    crowd = e2e.crowd()
    assert len(crowd) == CROWD
    numbers = [p.number for p in e2e.calls.values()]
    assert len(set(numbers)) == len(e2e.calls), numbers
    for placed in crowd:
        expected = [*announcement(placed.number), REPEAT_OFFER, MENU]
        assert placed.names == expected, placed.explain()
        assert digits_of(placed.heard) == placed.number, placed.explain()
    # and nobody was told "no number" (the service kept up with every call)
    for placed in e2e.calls.values():
        assert UNAVAILABLE not in placed.names, placed.explain()
    with sqlite3.connect(f"file:{e2e.service.database_path}?mode=ro", uri=True) as db:
        stored = db.execute("SELECT COUNT(*), COUNT(DISTINCT number) FROM protocols").fetchone()
    assert stored == (len(e2e.calls), len(e2e.calls))


# -- 5. hangup during the announcement -----------------------------------------------------


def test_hangup_during_the_number_keeps_protocol_and_call_log(e2e: E2E) -> None:
    placed = e2e.calls["hangup-early"]
    assert placed.result is not None and not placed.result.bye_received  # the caller hung up
    number = placed.number
    heard_digits = digits_of([h for h in placed.heard if h.complete])
    assert heard_digits and number.startswith(heard_digits) and heard_digits != number
    assert MENU not in placed.names, placed.explain()
    assert placed.hangup is not None, "no Hangup event for the caller's channel"

    answer = e2e.service.get(f"/api/v1/calls?protocol={number}", e2e.token)
    assert answer.status == 200, answer
    assert answer.body["total"] == 1, answer.body
    row = answer.body["items"][0]
    assert placed.protocol is not None
    assert row["linkedid"] == placed.protocol["linkedid"]
    assert row["ended_at"] is not None
    assert row["hangup_cause"] == int(placed.hangup["Cause"]), (row, placed.hangup)
    assert row["hangup_cause_text"] == placed.hangup["Cause-txt"]
    assert row["outcome"] == "ivr" and row["answered_at"] is None
    assert row["caller_number"] == placed.caller_num
    assert row["duration_s"] is not None and row["duration_s"] > 0

    detail = e2e.service.get(f"/api/v1/protocols/{number}", e2e.token)
    assert detail.status == 200, detail
    assert [c["linkedid"] for c in detail.body["calls"]] == [row["linkedid"]]
    assert detail.body["calls"][0]["hangup_cause"] == row["hangup_cause"]

    export = e2e.service.get(f"/api/v1/calls?protocol={number}&format=csv", e2e.token)
    assert export.status == 403, export  # a CSV export is for supervisors
    supervisor = e2e.service.create_token("e2e-supervisor", "supervisor")
    export = e2e.service.get(f"/api/v1/calls?protocol={number}&format=csv", supervisor)
    assert export.status == 200 and export.content_type == "text/csv", export
    lines = list(csv.DictReader(io.StringIO(export.text)))
    assert len(lines) == 1, export.text
    assert lines[0]["protocol"] == number
    assert lines[0]["linkedid"] == row["linkedid"]
    assert lines[0]["hangup_cause"] == str(row["hangup_cause"])


# -- 7. an agent answers -------------------------------------------------------------------


def test_agent_answer_fills_the_call_log(e2e: E2E) -> None:
    placed = e2e.calls["agent"]
    connect = e2e.agent_connect
    assert connect is not None, placed.explain()
    number = placed.number
    assert placed.protocol is not None and placed.hangup is not None, placed.explain()
    row = e2e.log_rows.get(str(placed.protocol["linkedid"]))
    assert row is not None, sorted(e2e.log_rows)
    assert row["protocol"] == number
    assert row["outcome"] == "answered"
    assert row["queue"] == "sac-agents"
    assert row["agent_interface"] == "PJSIP/sac-agent-1"
    assert row["agent_name"] == AGENT_NAME
    for key in ("line_answered_at", "queue_entered_at", "answered_at", "ended_at"):
        assert row[key] is not None, (key, row)
    assert row["queue_entered_at"] <= row["answered_at"] <= row["ended_at"]
    assert row["wait_s"] is not None and row["wait_s"] >= 0
    assert row["talk_s"] is not None and row["talk_s"] >= 0
    assert row["duration_s"] >= row["wait_s"] + row["talk_s"]
    assert row["hangup_cause"] == int(placed.hangup["Cause"]), (row, placed.hangup)

    for agent in (AGENT_NAME, "PJSIP/sac-agent-1"):
        query = urllib.parse.urlencode({"agent": agent})
        answer = e2e.service.get(f"/api/v1/calls?{query}", e2e.token)
        assert answer.status == 200, answer
        assert [c["linkedid"] for c in answer.body["items"]] == [row["linkedid"]], answer.body


def test_agent_hears_the_same_number(e2e: E2E, prompts: PromptLibrary) -> None:
    """The agent's phone gets the number the caller heard (whisper before the bridge)."""
    heard = prompts.find(e2e.agent.audio)
    assert heard and heard[0].name == "sac/agent-whisper", heard
    assert prompts.digits(e2e.agent.audio) == e2e.calls["agent"].number


# -- the call log of every call, and the service's health ----------------------------------


def test_every_call_is_in_the_call_log_with_its_number(e2e: E2E) -> None:
    for placed in e2e.calls.values():
        assert placed.protocol is not None, placed.explain()
        row = e2e.log_rows.get(str(placed.protocol["linkedid"]))
        assert row is not None, placed.explain()
        assert row["protocol"] == placed.number
        assert row["ended_at"] is not None, row
        assert placed.hangup is not None
        assert row["hangup_cause"] == int(placed.hangup["Cause"]), (row, placed.hangup)


def test_service_logged_no_errors(e2e: E2E) -> None:
    """With AMI on and SQLite: no 'database is locked', no failed issue, no traceback."""
    text = e2e.service.log_text()
    for bad in ("database is locked", "no protocol number issued", "Traceback", " ERROR "):
        assert bad not in text, text[-4000:]
