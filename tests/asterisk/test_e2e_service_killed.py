"""``sac-ivr serve`` killed with SIGKILL in the middle of a call, for real.

One caller is half a second into the intro ("Seu número de protocolo é") when the
service dies; a second caller comes in while it is down. Both must still reach the
menu and the agents' queue (the dialplan's fallback: Decreto 6.523 art. 4 §2, the
system never hangs up). The first caller's number was committed before the intro
and put on the channel (SAC_PROTOCOL) right after the commit: the caller must hear
the whole stored number after all (read by the dialplan), and the agent who answers
from the queue must get it on the INVITE (X-SAC-Protocol). A service started again
on the same database closes the call it missed (AMI reconciliation) and goes on
with the next number.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.asterisk.ami import AmiClient, Message
from tests.asterisk.audio import Heard, PromptLibrary
from tests.asterisk.instance import AsteriskInstance
from tests.asterisk.service import SacIvrService
from tests.asterisk.sipp import CallResult, Dtmf, SipAgent, SipCall, SipMessage
from tests.asterisk.stale import AGENT_INDEX, clear_queue

INTRO = "sac/protocol-intro"
OUTRO = "sac/protocol-outro"
MENU = "sac/menu-main"
TRANSFER = "sac/transfer-attendant"
UNAVAILABLE = "sac/protocol-unavailable"
NAME = "sac-ivr-killed"


@dataclass
class Caller:
    call: SipCall
    result: CallResult
    heard: list[Heard]
    joined: Message | None
    hangup_requests: list[Message]

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.heard]

    def explain(self) -> str:
        return f"heard {self.names}; joined={self.joined}; {self.result.work_dir}"


@dataclass
class Crash:
    during: Caller  # was hearing the intro when the service was killed
    after: Caller  # called while the service was down
    agent: CallResult  # the phone that answered the first caller from the queue
    agent_invite: SipMessage | None
    agent_connect: Message | None
    rows: dict[str, dict[str, Any]]  # caller_number -> protocols row, read after the kill
    restarted: SacIvrService
    token: str
    next_row: dict[str, Any] | None  # the first number issued after the restart


def _digits(heard: list[Heard]) -> str:
    return "".join(
        h.name.removeprefix("digits/") for h in heard if h.name.startswith("digits/") and h.complete
    )


def _rows(service: SacIvrService) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(f"file:{service.database_path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return {r["caller_number"]: dict(r) for r in db.execute("SELECT * FROM protocols")}


def _join(ami: AmiClient, call: SipCall, since: int, timeout: float) -> Message | None:
    try:
        return ami.wait_event(
            {"Event": "QueueCallerJoin", "Queue": "sac-agents", "CallerIDNum": call.caller_num},
            timeout=timeout,
            since=since,
        )
    except TimeoutError:
        return None


def _finish(
    ami: AmiClient, prompts: PromptLibrary, call: SipCall, since: int, timeout: float
) -> Caller:
    """Wait for the caller to join the queue, hang it up (AMI), collect what it heard."""
    joined = _join(ami, call, since, timeout)
    if joined is not None:
        time.sleep(0.3)
        ami.action("Hangup", Channel=joined["Channel"])
    result = call.wait(20)
    requests = ami.find_events(
        lambda e: e.get("Event") == "HangupRequest" and e.get("CallerIDNum") == call.caller_num,
        since,
    )
    return Caller(call, result, prompts.find(result.audio), joined, requests)


@pytest.fixture(scope="module")
def crash(
    asterisk: AsteriskInstance, ami: AmiClient, prompts: PromptLibrary, sipp_available: None
) -> Iterator[Crash]:
    service = SacIvrService(asterisk, name=NAME).start()
    restarted: SacIvrService | None = None
    press_0 = [Dtmf("0", during=MENU, delay=0.5)]
    during = SipCall(asterisk, prompts=prompts, dtmf=press_0)
    after = SipCall(asterisk, prompts=prompts, dtmf=press_0)
    agent = SipAgent(asterisk, index=AGENT_INDEX, prompts=prompts)
    since = ami.mark()
    try:
        agent.start()  # listening; joins the queue once the first caller waits there
        during.start()
        # the intro starts playing: the number is committed and (now) on the channel
        ami.wait_event(
            lambda e: (
                e.get("Event") == "AGIExecStart"
                and e.get("CallerIDNum") == during.caller_num
                and e.get("Command", "").startswith(f"STREAM FILE {INTRO}")
            ),
            timeout=30,
            since=since,
        )
        time.sleep(0.5)
        service.kill()
        timeout = prompts.duration(UNAVAILABLE) + prompts.duration(MENU) + 30
        # the first caller: the whole number from the dialplan, menu, queue, an agent
        joined = _join(ami, during, since, timeout)
        connect = None
        if joined is not None:
            clear_queue(ami, keep=joined["Channel"])
            ami.action("QueueAdd", Queue="sac-agents", Interface=agent.interface)
            try:
                connect = ami.wait_event(
                    {"Event": "AgentConnect", "CallerIDNum": during.caller_num},
                    timeout=30,
                    since=since,
                )
            except TimeoutError:
                connect = None
            ami.action("QueueRemove", Queue="sac-agents", Interface=agent.interface)
        # the second caller comes in while the service is still down
        after.start()
        if joined is not None:
            time.sleep(0.5)  # a moment of the call with the agent
        hangup_mark = ami.mark()  # from here on, hangups are the test's doing
        if joined is not None:
            ami.action("Hangup", Channel=joined["Channel"])
        result = during.wait(20)
        requests = [
            e
            for e in ami.events[since:hangup_mark]
            if e.get("Event") == "HangupRequest" and e.get("CallerIDNum") == during.caller_num
        ]
        first = Caller(during, result, prompts.find(result.audio), joined, requests)
        agent_result = agent.wait(20)
        second = _finish(ami, prompts, after, since, timeout)
        rows = _rows(service)

        # the same database, a new process: it reconciles what it missed over AMI
        restarted = SacIvrService(asterisk, name=NAME).start()
        token = restarted.create_token("killed-agent", "agent")
        mark = ami.mark()
        probe = SipCall(asterisk, prompts=prompts)
        probe.start()
        varset = ami.wait_event(
            {"Event": "VarSet", "Variable": "SAC_PROTOCOL", "CallerIDNum": probe.caller_num},
            timeout=30,
            since=mark,
        )
        ami.action("Hangup", Channel=varset["Channel"])
        probe.wait(20)
        yield Crash(
            first,
            second,
            agent_result,
            agent.received_request("INVITE"),
            connect,
            rows,
            restarted,
            token,
            _rows(restarted).get(probe.caller_num),
        )
    finally:
        for call in (during, after):
            call.stop()
        agent.stop()
        service.stop()
        if restarted is not None:
            restarted.stop()


def test_caller_killed_into_the_intro_hears_the_whole_number_then_menu_and_queue(
    crash: Crash,
) -> None:
    """Killed 0.5 s into the intro: SAC_PROTOCOL was set before it (right after the
    commit), so the dialplan sees a number without SAC_RESULT=OK and reads the whole
    number itself (SayDigits), then the menu and the queue; never the "we could not
    generate your number" prompt."""
    caller = crash.during
    assert caller.joined is not None, caller.explain()
    row = crash.rows.get(caller.call.caller_num, {})
    number = row.get("number")
    assert number, f"the number was not committed before the intro: {crash.rows}"
    assert row["status"] == "open"
    assert UNAVAILABLE not in caller.names, caller.explain()
    # sac-ivr's intro, cut by the kill, no digit of it
    assert caller.names[0] == INTRO and not caller.heard[0].complete, caller.explain()
    # the dialplan's reading: the whole number, then the closing, the menu, the queue
    expected = [INTRO, *(f"digits/{d}" for d in number), OUTRO, MENU, TRANSFER]
    assert caller.names[1:] == expected, caller.explain()
    assert all(h.complete for h in caller.heard[1:-2]), caller.explain()
    assert caller.result.sent_dtmf and caller.result.sent_dtmf[0][0] == "0"
    assert not caller.hangup_requests, caller.hangup_requests  # only the test hung up


def test_agent_answering_that_caller_gets_the_number_on_the_invite(
    crash: Crash, prompts: PromptLibrary
) -> None:
    number = crash.rows[crash.during.call.caller_num]["number"]
    assert crash.agent_connect is not None, "no agent was connected to the caller"
    invite = crash.agent_invite
    assert invite is not None, f"no INVITE in {crash.agent.work_dir}"
    assert invite.header("X-SAC-Protocol") == number
    assert invite.from_display_name == f"P {number}"
    # and heard it whispered before the bridge
    assert prompts.digits(crash.agent.audio) == number
    assert crash.agent.bye_received


def test_caller_after_the_kill_gets_the_fallback_and_the_queue(crash: Crash) -> None:
    caller = crash.after
    assert caller.joined is not None, caller.explain()
    assert caller.names == [UNAVAILABLE, MENU, TRANSFER], caller.explain()
    assert [h.complete for h in caller.heard] == [True, False, True], caller.explain()
    assert caller.call.caller_num not in crash.rows  # no service, no number
    assert not caller.hangup_requests, caller.hangup_requests


def test_restarted_service_closes_the_missed_call_and_goes_on(crash: Crash) -> None:
    number = crash.rows[crash.during.call.caller_num]["number"]
    deadline = time.monotonic() + 15
    while True:
        answer = crash.restarted.get(f"/api/v1/calls?protocol={number}", crash.token)
        assert answer.status == 200, answer
        items = answer.body["items"]
        if (items and items[0]["ended_at"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(items) == 1, answer.body
    # its hangup happened while no sac-ivr followed AMI: closed by reconciliation
    assert items[0]["ended_at"] is not None and items[0]["reconciled"] is True, items[0]
    assert items[0]["hangup_cause"] is None
    # numbering goes on after the crash: a new, later number, never a reused one
    assert crash.next_row is not None
    assert crash.next_row["number"] not in {r["number"] for r in crash.rows.values()}
    assert crash.next_row["id"] > max(r["id"] for r in crash.rows.values())
