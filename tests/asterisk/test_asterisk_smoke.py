"""The project's dialplan on a real Asterisk 22, with NO sac-ivr on the AGI port.

This is the fallback the law asks for (Decreto 6.523 art. 4 §2 and §3): when the
service is down the caller hears sac/protocol-unavailable, gets the menu, and every
path ends in the agents' queue; the system never hangs up. What the caller heard is
proven byte for byte (tests.asterisk.audio) on the RTP Asterisk sent (SIPp calls) and
on a MixMonitor recording (AMI Originate of a Local channel).

All calls run at once (one module fixture), so the module lasts as long as its
longest call (about 30 s with the project's prompts).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.asterisk.ami import AmiClient, Message
from tests.asterisk.audio import PromptLibrary, is_subsequence, recording_to_ulaw, wait_file_settled
from tests.asterisk.instance import AsteriskInstance
from tests.asterisk.sipp import CallResult, Dtmf, SipCall

CONTEXTS = (
    "sac-entry",
    "sac-menu",
    "sac-menu-complaint",
    "sac-menu-cancellation",
    "sac-menu-information",
    "sac-attendant",
    "sac-agent-predial",
    "sac-agent-connect",
    "sac-sub-settings",
    "sac-sub-subject",
    "sac-sub-retry",
)
UNAVAILABLE = "sac/protocol-unavailable"
MENU = "sac/menu-main"
TRANSFER = "sac/transfer-attendant"


def test_dialplan_contexts_loaded(asterisk: AsteriskInstance) -> None:
    for context in CONTEXTS:
        out = asterisk.cli(f"dialplan show {context}")
        assert f"Context '{context}' created by 'pbx_config'" in out, out
    # the project's file was included unchanged, from the project
    assert "extensions_sac.conf" in asterisk.cli("dialplan show sac-entry")


def test_dialplan_loads_without_warnings(asterisk: AsteriskInstance) -> None:
    text = asterisk.full_log.read_text(errors="replace")
    bad = [
        line
        for line in text.splitlines()
        if ("WARNING" in line or "ERROR" in line)
        and ("pbx_config" in line or "extensions_sac" in line or "app_queue" in line)
    ]
    assert not bad, "\n".join(bad)


def test_ami_login(ami: AmiClient) -> None:
    assert ami.banner.startswith("Asterisk Call Manager/")
    assert ami.action("Ping")["Response"] == "Success"
    # the queue the dialplan sends callers to exists
    status = ami.action("QueueSummary", Queue="sac-agents")
    assert status["Response"] == "Success"
    assert ami.wait_event({"Event": "QueueSummary", "Queue": "sac-agents"}, timeout=5)


# -- calls while sac-ivr is down ------------------------------------------------------------


@dataclass
class Outcome:
    """What one caller got: the audio (as prompt names) and the queue join event."""

    heard: list[str]
    complete: list[str]
    joined: Message | None
    joins: int
    result: CallResult | None = None

    def explain(self) -> str:
        where = self.result.work_dir if self.result else ""
        return f"heard {self.heard} (complete: {self.complete}); joined={self.joined}; {where}"


def _sip_scenarios() -> dict[str, dict[str, object]]:
    return {
        # pressing 0 after the whole menu; dialled as a DID, not "s"
        "press-0": {
            "extension": "08001234567",
            "dtmf": [Dtmf("0", after=MENU)],
        },
        # two invalid keys during the menu, then silence: the third failure -> attendant
        "invalid-invalid-timeout": {
            "dtmf": [
                Dtmf("9", during=MENU, delay=1.0),
                Dtmf("*", during=MENU, delay=1.0),
            ],
        },
        # cancellation: 2, then 1 -> registered, then the attendant
        "cancellation": {
            "dtmf": [
                Dtmf("2", during=MENU, delay=0.5),
                Dtmf("1", during="sac/menu-cancellation", delay=0.5),
            ],
        },
        # information: 3, then 1 (no protocol: told the attendant gives it), then 0
        "information": {
            "dtmf": [
                Dtmf("3", during=MENU, delay=0.5),
                Dtmf("1", during="sac/menu-information", delay=0.5),
                Dtmf("0", during="sac/menu-information", delay=0.5),
            ],
        },
        # complaint: 1, then 2 (product) -> attendant
        "complaint": {
            "dtmf": [
                Dtmf("1", during=MENU, delay=0.5),
                Dtmf("2", during="sac/menu-complaint", delay=0.5),
            ],
        },
    }


def _join_timeout(prompts: PromptLibrary) -> float:
    # the longest path: unavailable + 3 menus + 2 invalids + timeouts + transfer, plus slack
    return (
        prompts.duration(UNAVAILABLE)
        + 3 * prompts.duration(MENU)
        + 2 * prompts.duration("sac/menu-invalid")
        + prompts.duration(TRANSFER)
        + 3 * 2.0
        + 20.0
    )


@pytest.fixture(scope="module")
def fallback_calls(
    asterisk: AsteriskInstance,
    ami: AmiClient,
    service_ami: AmiClient,
    prompts: PromptLibrary,
    sipp_available: None,
) -> Iterator[dict[str, Outcome]]:
    """Start every call at once; each ends when it has joined the queue (AMI Hangup)."""
    since = ami.mark()
    calls = {
        name: SipCall(asterisk, prompts=prompts, **kw) for name, kw in _sip_scenarios().items()
    }  # type: ignore[arg-type]
    for call in calls.values():
        call.start()
    # The Originate call: Local channel in µ-law, recorded by MixMonitor, presses 0
    # during the menu; SAC_QUEUE_TIMEOUT=1 (a channel variable) makes Queue() return
    # so the caller must hear sac/queue-wait and join again.
    recording = asterisk.recordings_dir / "originate-fallback.wav"
    press_at = prompts.duration(UNAVAILABLE) + 1.5
    originate = ami.action(
        "Originate",
        Channel="Local/s@sac-test-record",
        Codecs="ulaw",
        Context="sac-test-listener",
        Exten="s",
        Priority="1",
        CallerID='"originate" <5511900000001>',
        Variable=[
            f"SAC_TEST_RECORDING={recording}",
            "SAC_TEST_DTMF=0",
            f"SAC_TEST_DTMF_AFTER={press_at:.1f}",
            "SAC_TEST_DURATION=120",
            "SAC_QUEUE_TIMEOUT=1",
        ],
        Async="true",
    )
    assert originate["Response"] == "Success", originate

    outcomes: dict[str, Outcome] = {}
    deadline = time.monotonic() + _join_timeout(prompts)
    try:
        for name, call in calls.items():
            joined = _wait_join(ami, {"CallerIDNum": call.caller_num}, deadline, since)
            if joined is not None:
                time.sleep(0.3)  # a little queue silence after the last prompt
                ami.action("Hangup", Channel=joined["Channel"])
            result = call.wait(30)
            found = prompts.find(result.audio)
            outcomes[name] = Outcome(
                heard=[h.name for h in found],
                complete=[h.name for h in found if h.complete],
                joined=joined,
                joins=len(
                    ami.find_events(
                        {"Event": "QueueCallerJoin", "CallerIDNum": call.caller_num}, since
                    )
                ),
                result=result,
            )
        # the Originate call: wait for its second join (after queue-wait)
        local = {"CallerIDNum": "5511900000001"}
        first = _wait_join(ami, local, deadline, since)
        second = None
        if first is not None:
            second = _wait_join(ami, local, deadline, ami.events.index(first) + 1)
        channel = (second or first or {}).get("Channel")
        if channel:
            ami.action("Hangup", Channel=channel)
            # no MixMonitorStop on hangup: wait for the Hangup, then for the file to settle
            ami.wait_event({"Event": "Hangup", "Channel": channel}, timeout=10, since=since)
            wait_file_settled(recording)
        stream = recording_to_ulaw(recording) if recording.exists() else b""
        found = prompts.find(stream, tail_tolerance=160)
        outcomes["originate"] = Outcome(
            heard=[h.name for h in found],
            complete=[h.name for h in found if h.complete],
            joined=first,
            joins=len(ami.find_events({"Event": "QueueCallerJoin", **local}, since)),
        )
        yield outcomes
    finally:
        for call in calls.values():
            call.stop()


def _wait_join(
    ami: AmiClient, match: dict[str, str], deadline: float, since: int
) -> Message | None:
    try:
        return ami.wait_event(
            {"Event": "QueueCallerJoin", "Queue": "sac-agents", **match},
            timeout=max(0.1, deadline - time.monotonic()),
            since=since,
        )
    except TimeoutError:
        return None


def test_press_0_after_menu_reaches_queue(fallback_calls: dict[str, Outcome]) -> None:
    o = fallback_calls["press-0"]
    assert o.joined is not None, o.explain()
    # nothing else was played: unavailable, the whole menu, the transfer
    assert o.heard == [UNAVAILABLE, MENU, TRANSFER], o.explain()
    assert o.complete == o.heard, o.explain()
    assert o.result is not None and o.result.returncode == 0
    assert o.result.sent_dtmf and o.result.sent_dtmf[0][0] == "0"


def test_invalid_keys_and_silence_end_at_attendant(fallback_calls: dict[str, Outcome]) -> None:
    o = fallback_calls["invalid-invalid-timeout"]
    assert o.joined is not None, o.explain()
    expected = [UNAVAILABLE, MENU, "sac/menu-invalid", MENU, "sac/menu-invalid", MENU, TRANSFER]
    assert o.heard == expected, o.explain()
    # the two menus cut short by a key, the last one heard whole (then the timeout)
    assert o.complete == [UNAVAILABLE, "sac/menu-invalid", "sac/menu-invalid", MENU, TRANSFER]


def test_cancellation_is_registered_then_attendant(fallback_calls: dict[str, Outcome]) -> None:
    o = fallback_calls["cancellation"]
    assert o.joined is not None, o.explain()
    expected = [
        UNAVAILABLE,
        MENU,
        "sac/menu-cancellation",
        "sac/cancellation-registered",
        TRANSFER,
    ]
    assert o.heard == expected, o.explain()
    assert "sac/cancellation-registered" in o.complete


def test_information_without_protocol_then_attendant(fallback_calls: dict[str, Outcome]) -> None:
    o = fallback_calls["information"]
    assert o.joined is not None, o.explain()
    expected = [
        UNAVAILABLE,
        MENU,
        "sac/menu-information",
        UNAVAILABLE,  # key 1 with no number: "the attendant will give it"
        "sac/menu-information",
        TRANSFER,
    ]
    assert o.heard == expected, o.explain()


def test_complaint_submenu_then_attendant(fallback_calls: dict[str, Outcome]) -> None:
    o = fallback_calls["complaint"]
    assert o.joined is not None, o.explain()
    assert o.heard == [UNAVAILABLE, MENU, "sac/menu-complaint", TRANSFER], o.explain()


def test_originate_recording_and_queue_loop(fallback_calls: dict[str, Outcome]) -> None:
    """MixMonitor of an AMI-originated call: the same fallback, then the queue returns
    (SAC_QUEUE_TIMEOUT=1), the caller hears sac/queue-wait and joins again."""
    o = fallback_calls["originate"]
    assert o.joined is not None, o.explain()
    assert is_subsequence([UNAVAILABLE, MENU, TRANSFER, "sac/queue-wait"], o.heard), o.explain()
    assert o.heard[:3] == [UNAVAILABLE, MENU, TRANSFER], o.explain()
    assert MENU not in o.complete  # 0 was pressed during the menu
    assert o.joins >= 2, o.explain()


def test_no_call_was_hung_up_by_the_system(
    fallback_calls: dict[str, Outcome], ami: AmiClient
) -> None:
    """Every call was still up when it joined the queue; the hangups are the test's own."""
    for name, o in fallback_calls.items():
        assert o.joined is not None, f"{name}: {o.explain()}"
    hangup_requests = [
        e
        for e in ami.events
        if e.get("Event") == "HangupRequest" and "Local/" not in e.get("Channel", "")
    ]
    # a HangupRequest event is raised only by the channel's own dialplan (Hangup());
    # the test's AMI Hangup shows as SoftHangupRequest
    assert not hangup_requests, hangup_requests


def test_service_ami_user_gets_what_it_needs(
    fallback_calls: dict[str, Outcome], service_ami: AmiClient
) -> None:
    """The sac-ivr user of manager.conf.sample: the events of the call log and panels
    (VarSet of SAC_* included), none of the Newexten noise, and its status actions."""
    names = {e["Event"] for e in service_ami.events}
    for event in ("Newchannel", "VarSet", "QueueCallerJoin", "Hangup", "MixMonitorStart"):
        assert event in names, sorted(names)
    assert "Newexten" not in names
    # the dialplan's SAC_* variables (inheritable ones show as __SAC_...)
    variables = {e.get("Variable", "").lstrip("_") for e in service_ami.events}
    assert {"SAC_PROTOCOL", "SAC_SUBJECT"} <= variables, sorted(variables)
    for action in ("QueueStatus", "CoreShowChannels"):
        assert service_ami.action(action)["Response"] == "Success", action
    # no "system" or "command" rights
    assert service_ami.action("Command", Command="core show uptime")["Response"] == "Error"
