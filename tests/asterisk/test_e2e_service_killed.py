"""``sac-ivr serve`` killed with SIGKILL in the middle of a call, for real.

One caller is hearing its number when the service dies; a second caller comes in
right after. Both must still reach the menu and the agents' queue (the dialplan's
fallback: Decreto 6.523 art. 4 §2, the system never hangs up); the first caller's
number must be in the database (it was committed before its first digit) and be
read to the caller whole after all (by the dialplan); and a service started again
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
from tests.asterisk.sipp import CallResult, Dtmf, SipCall

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
    during: Caller  # was hearing its number when the service was killed
    after: Caller  # called while the service was down
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
    since = ami.mark()
    try:
        during.start()
        # SAC_PROTOCOL is set once the intro has played: the digits are being read
        ami.wait_event(
            {"Event": "VarSet", "Variable": "SAC_PROTOCOL", "CallerIDNum": during.caller_num},
            timeout=30,
            since=since,
        )
        time.sleep(0.5)
        service.kill()
        after.start()
        timeout = prompts.duration(UNAVAILABLE) + prompts.duration(MENU) + 30
        first = _finish(ami, prompts, during, since, timeout)
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
        yield Crash(first, second, rows, restarted, token, _rows(restarted).get(probe.caller_num))
    finally:
        for call in (during, after):
            call.stop()
        service.stop()
        if restarted is not None:
            restarted.stop()


def test_caller_hearing_its_number_gets_it_whole_then_menu_and_queue(crash: Crash) -> None:
    """Killed mid-reading: the dialplan sees SAC_PROTOCOL without SAC_RESULT=OK and
    reads the whole number itself (SayDigits), then the menu and the queue."""
    caller = crash.during
    assert caller.joined is not None, caller.explain()
    number = crash.rows.get(caller.call.caller_num, {}).get("number")
    assert number, f"the number read before the kill was not committed: {crash.rows}"
    intros = [i for i, h in enumerate(caller.heard) if h.name == INTRO]
    assert len(intros) == 2 and intros[0] == 0, caller.explain()
    # sac-ivr's reading, cut by the kill: the stored number's first digits
    cut = _digits(caller.heard[: intros[1]])
    assert cut and number.startswith(cut) and cut != number, (cut, number)
    # the dialplan's reading: the whole number, then the closing, the menu, the queue
    expected = [INTRO, *(f"digits/{d}" for d in number), OUTRO, MENU, TRANSFER]
    assert caller.names[intros[1] :] == expected, caller.explain()
    assert caller.result.sent_dtmf and caller.result.sent_dtmf[0][0] == "0"
    assert not caller.hangup_requests, caller.hangup_requests  # only the test hung up


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
