"""Issue 4, "agents", for real: Asterisk 22 with the project's dialplan and sounds, the
real ``sac-ivr serve`` following AMI, a SIPp agent phone in the queue, and the agent
panel and supervisor view in real headless Chromium.

One module fixture plays the whole scene, in this order:

1. Two SIP callers (A, then B) hear their numbers, press 0 and wait in ``sac-agents``,
   which has no member yet. The supervisor view shows both waiting, with their numbers.
2. The agent logs in to the panel with a token whose extension is the SIPp phone's
   interface and sees two masked callers in the queue.
3. The phone joins the queue (AMI QueueAdd). It rings for a few seconds: the panel pops
   A's protocol (at the X-SAC-URL the phone got) and shows the call ringing, then, once
   the phone answered and heard the number whispered, connected, with the wait.
4. In the page the agent sets the subject, the CPF, the name and a note, then moves the
   protocol to "in progress"; the API with the agent's token returns all of it.
5. The supervisor view again: B still waits (nobody free), A is with the agent.

The announcement has no repeat offer here (``announce_repeats=0``) to keep the module
short; the dialplan global SAC_PANEL_URL points at this service while it runs.
Screenshots: ``test-artifacts/e2e-*.png``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sac_ivr.phones import normalize_phone
from tests.asterisk.ami import AmiClient, Message
from tests.asterisk.audio import PromptLibrary
from tests.asterisk.e2e_api import api, create_token, service_errors, wait_until
from tests.asterisk.instance import AsteriskInstance
from tests.asterisk.service import SacIvrService
from tests.asterisk.sipp import CallResult, Dtmf, SipAgent, SipCall, SipMessage
from tests.browser import ARTIFACTS, EXPECTED_HTTP_ERRORS, Browser, login_panel, shown_protocol

pytestmark = pytest.mark.chromium

INTRO = "sac/protocol-intro"
OUTRO = "sac/protocol-outro"
MENU = "sac/menu-main"
TRANSFER = "sac/transfer-attendant"
QUEUE = "sac-agents"
AGENT_NAME = "Ana Souza"
RING_SECONDS = 4.0
CPF = "52998224725"
NOTE = "Cobrança em duplicidade na fatura de outubro."
INTERNAL_NOTE = "Estorno pedido ao financeiro."
WAIT = 60.0  # seconds a step of the scene may take (a call's whole IVR fits in it)


@dataclass
class Seen:
    """What the pages showed at each step (text of the elements waited for)."""

    supervisor_waiting: str = ""
    agent_queue: str = ""
    ringing_item: str = ""
    ringing_live: str = ""
    ringing_url: str = ""
    ringing_customer: str = ""
    connected_item: str = ""
    connected_live: str = ""
    timeline: str = ""
    supervisor_after_waiting: str = ""
    supervisor_after_active: str = ""
    console_errors: list[str] = field(default_factory=list)


@dataclass
class Scene:
    service: SacIvrService
    token: str
    agent_interface: str
    numbers: dict[str, str]  # caller name (a, b) -> protocol number
    callers: dict[str, SipCall]
    joins: dict[str, Message]
    results: dict[str, CallResult]
    agent: CallResult
    invite: SipMessage | None
    connect: Message
    seen: Seen
    protocol: dict[str, Any]  # GET /api/v1/protocols/{A} after the scene


@pytest.fixture(scope="module")
def service(asterisk: AsteriskInstance) -> Iterator[SacIvrService]:
    svc = SacIvrService(asterisk, name="sac-ivr-e2e-agents", env={"SAC_IVR_ANNOUNCE_REPEATS": "0"})
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def panel_url(ami: AmiClient, service: SacIvrService) -> Iterator[str]:
    """The dialplan global SAC_PANEL_URL (base of X-SAC-URL) set to this service."""
    before = ami.action("Getvar", Variable="SAC_PANEL_URL").get("Value", "")
    ami.action("Setvar", Variable="SAC_PANEL_URL", Value=service.base_url)
    try:
        yield service.base_url
    finally:
        ami.action("Setvar", Variable="SAC_PANEL_URL", Value=before)


def _protocol_of(service: SacIvrService, token: str, caller_num: str) -> str:
    e164 = normalize_phone(caller_num)
    assert e164 is not None
    status, page = api(service, f"/api/v1/protocols?phone={e164.replace('+', '%2B')}", token)
    assert status == 200 and page["total"] == 1, page
    return str(page["items"][0]["number"])


@pytest.fixture(scope="module")
def scene(
    asterisk: AsteriskInstance,
    ami: AmiClient,
    prompts: PromptLibrary,
    service: SacIvrService,
    panel_url: str,
    chromium: Any,
    sipp_available: None,
) -> Iterator[Scene]:
    agent = SipAgent(asterisk, index=0, prompts=prompts, ring_seconds=RING_SECONDS)
    token = create_token(service, "ana", "agent", extension=agent.interface)
    supervisor = create_token(service, "sofia", "supervisor")
    callers = {
        # A is first in the queue; B presses 0 later in the menu, so it joins second
        "a": SipCall(asterisk, prompts=prompts, dtmf=[Dtmf("0", during=MENU, delay=0.5)]),
        "b": SipCall(asterisk, prompts=prompts, dtmf=[Dtmf("0", during=MENU, delay=3.0)]),
    }
    since = ami.mark()
    joins: dict[str, Message] = {}
    numbers: dict[str, str] = {}
    seen = Seen()
    browser = Browser(chromium)
    state: dict[str, Any] = {}

    def join_of(name: str) -> Message:
        match = {"Event": "QueueCallerJoin", "CallerIDNum": callers[name].caller_num}
        return ami.wait_event(match, timeout=WAIT, since=since)

    async def login(page: str, with_token: str) -> None:
        await browser.call(chromium.execute_cdp_cmd, "Network.clearBrowserCookies", {})
        await login_panel(browser, service.base_url + page, with_token)
        await browser.wait_for("#live-status[data-state=live]")

    async def play() -> None:
        # 1. the supervisor sees both callers waiting; no agent in the queue yet
        await login("/supervisor", supervisor)
        for name in callers:
            joins[name] = await asyncio.to_thread(join_of, name)
            numbers[name] = await asyncio.to_thread(
                _protocol_of, service, token, callers[name].caller_num
            )
        await browser.wait_for("#waiting-total", text="2", timeout=WAIT)
        for name in callers:
            await browser.wait_for("#waiting", text=shown_protocol(numbers[name]))
        seen.supervisor_waiting = await browser.text("#waiting")
        await browser.screenshot("e2e-supervisor-waiting")

        # 2. the agent's panel: two callers in the queue, masked
        await login("/agent", token)
        await browser.wait_for("#who-ext", text=agent.interface)
        await browser.wait_for("#queue-count", text="2")
        seen.agent_queue = await browser.text("#queue-calls")
        await browser.screenshot("e2e-agent-queue")

        # 3. the phone joins the queue: A rings on it, then it answers
        added = await asyncio.to_thread(
            ami.action, "QueueAdd", Queue=QUEUE, Interface=agent.interface, MemberName=AGENT_NAME
        )
        assert added["Response"] == "Success", added
        a = shown_protocol(numbers["a"])
        # Read in the same look: every live event redraws the list.
        seen.ringing_item = await browser.wait_for_text(
            "#my-calls .call-item.state-ringing", text=a
        )
        await browser.wait_for("#call-number", text=a)
        await browser.wait_for("#call-live .badge", text="Tocando")
        await browser.wait_for("#customer-facts", text="Telefone")
        seen.ringing_live = await browser.text("#call-live")
        seen.ringing_url = browser.url
        seen.ringing_customer = await browser.text("#customer-facts")
        await browser.screenshot("e2e-agent-ringing")
        seen.connected_item = await browser.wait_for_text(
            "#my-calls .call-item.state-connected", text="esperou", timeout=WAIT
        )
        await browser.wait_for("#call-live .badge", text="Em atendimento")
        seen.connected_live = await browser.text("#call-live")
        await browser.screenshot("e2e-agent-connected")
        state["connect"] = await asyncio.to_thread(
            ami.wait_event,
            {"Event": "AgentConnect", "CallerIDNum": callers["a"].caller_num},
            timeout=5,
            since=since,
        )

        # 4. the agent records the call in the page, once the call log has written
        #    the answer (its timeline entry comes back with the first save)
        await asyncio.to_thread(
            wait_until,
            lambda: _answered(service, token, numbers["a"]),
            "the answer on A's protocol",
        )
        await browser.wait_for("#f-subject option[value=complaint]", visible=False)
        await browser.select("#f-subject", "complaint")
        await browser.fill("#f-document", CPF)
        await browser.wait_for("#f-document-note.ok", text="CPF válido")
        await browser.fill("#f-name", "Maria Silva")
        await browser.fill("#f-notes", NOTE)
        await browser.click("#save-details")
        await browser.wait_for("#details-state", text="Salvo")
        await browser.select("#s-to", "in_progress")
        await browser.fill("#s-internal-note", INTERNAL_NOTE)
        await browser.click("#change-status")
        await browser.wait_for("#status-now", text="Em andamento")
        await browser.wait_for("#timeline", text=INTERNAL_NOTE)
        seen.timeline = await browser.text("#timeline")
        await browser.screenshot("e2e-agent-actions")
        seen.console_errors += await browser.console_errors(ignore=EXPECTED_HTTP_ERRORS)

        # 5. the supervisor: B still waits, A is with the agent
        await login("/supervisor", supervisor)
        await browser.wait_for("#waiting-total", text="1")
        await browser.wait_for("#waiting", text=shown_protocol(numbers["b"]))
        await browser.wait_for("#active", text=AGENT_NAME)
        seen.supervisor_after_waiting = await browser.text("#waiting")
        seen.supervisor_after_active = await browser.text("#active")
        await browser.screenshot("e2e-supervisor-live")
        seen.console_errors += await browser.console_errors(ignore=EXPECTED_HTTP_ERRORS)

    agent.start()  # listening; not in the queue yet
    for call in callers.values():
        call.start()
    try:
        try:
            asyncio.run(play())
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            chromium.save_screenshot(str(ARTIFACTS / "failed-e2e-agents.png"))
            raise
        finally:
            chromium.get("about:blank")  # close the pages' event streams
        ami.action("QueueRemove", Queue=QUEUE, Interface=agent.interface)
        for name in ("a", "b"):  # A's hangup ends the agent's call too
            ami.action("Hangup", Channel=joins[name]["Channel"])
        results = {name: call.wait(30) for name, call in callers.items()}
        agent_result = agent.wait(30)
        protocol = wait_until(
            lambda: _answered(service, token, numbers["a"]), "the answer on A's protocol"
        )
        yield Scene(
            service=service,
            token=token,
            agent_interface=agent.interface,
            numbers=numbers,
            callers=callers,
            joins=joins,
            results=results,
            agent=agent_result,
            invite=agent.received_request("INVITE"),
            connect=state["connect"],
            seen=seen,
            protocol=protocol,
        )
    finally:
        ami.action("QueueRemove", Queue=QUEUE, Interface=agent.interface)
        for call in callers.values():
            call.stop()
        agent.stop()


def _answered(service: SacIvrService, token: str, number: str) -> dict[str, Any] | None:
    """A's protocol once the call log has named the agent on it."""
    status, body = api(service, f"/api/v1/protocols/{number}", token)
    assert status == 200, body
    return body if any(e["kind"] == "answered" for e in body["events"]) else None


def grouped_phone(caller_num: str) -> str:
    """A Brazilian mobile as the panels print it: (11) 99990-0001."""
    e164 = normalize_phone(caller_num)
    assert e164 is not None
    return f"({e164[3:5]}) {e164[5:10]}-{e164[10:]}"


# -- the call itself ---------------------------------------------------------------------


def test_callers_hear_their_numbers_then_menu_then_transfer(
    scene: Scene, prompts: PromptLibrary
) -> None:
    for name, result in scene.results.items():
        number = scene.numbers[name]
        heard = result.heard(prompts)
        assert heard == [INTRO, *(f"digits/{d}" for d in number), OUTRO, MENU, TRANSFER], (
            f"{name}: {heard} ({result.work_dir})"
        )
        assert prompts.digits(result.audio) == number
    assert scene.numbers["a"] != scene.numbers["b"]


def test_agent_invite_carries_the_stored_number_and_panel_url(scene: Scene) -> None:
    number = scene.numbers["a"]
    invite = scene.invite
    assert invite is not None, f"no INVITE in {scene.agent.work_dir}"
    assert invite.header("X-SAC-Protocol") == number
    assert invite.header("X-SAC-URL") == f"{scene.service.base_url}/agent/calls/{number}"
    assert invite.from_display_name == f"P {number}"
    # and the number is the one stored for caller A
    status, body = api(scene.service, f"/api/v1/protocols/{number}", scene.token)
    assert status == 200 and body["caller_number"] == scene.callers["a"].caller_num


def test_agent_answered_and_heard_the_number_whispered(
    scene: Scene, prompts: PromptLibrary
) -> None:
    heard = prompts.find(scene.agent.audio)
    assert heard and heard[0].name == "sac/agent-whisper", heard
    assert prompts.digits(scene.agent.audio) == scene.numbers["a"]
    assert scene.connect["Interface"] == scene.agent_interface
    assert scene.connect["MemberName"] == AGENT_NAME
    assert scene.agent.bye_received  # the call ended from the caller's side


def test_call_log_names_the_agent_on_the_protocol(scene: Scene) -> None:
    assert scene.protocol["agent"] == AGENT_NAME
    (answered,) = [e for e in scene.protocol["events"] if e["kind"] == "answered"]
    assert answered["data"]["agent_interface"] == scene.agent_interface
    assert answered["data"]["queue"] == QUEUE


# -- the panels, driven by the real AMI events -------------------------------------------


def test_supervisor_saw_both_callers_waiting_with_nobody_to_answer(scene: Scene) -> None:
    text = scene.seen.supervisor_waiting
    for name in ("a", "b"):
        assert shown_protocol(scene.numbers[name]) in text, text
        assert grouped_phone(scene.callers[name].caller_num) in text, text
    assert QUEUE in text
    assert "tocando" not in text  # no one to ring


def test_agent_saw_the_queue_with_callers_masked(scene: Scene) -> None:
    text = scene.seen.agent_queue
    for call in scene.callers.values():
        assert "•••• " + call.caller_num[-4:] in text, text
        assert grouped_phone(call.caller_num) not in text, text


def test_panel_showed_the_call_ringing_with_protocol_caller_and_wait(scene: Scene) -> None:
    seen, a = scene.seen, scene.callers["a"]
    assert shown_protocol(scene.numbers["a"]) in seen.ringing_item
    assert grouped_phone(a.caller_num) in seen.ringing_item  # the caller in full: it's mine
    assert "Tocando" in seen.ringing_item and f"Fila {QUEUE}" in seen.ringing_item
    assert "esperando há" in seen.ringing_live, seen.ringing_live
    assert grouped_phone(a.caller_num) in seen.ringing_customer
    # the screen pop opened the very URL the phone got in X-SAC-URL
    assert scene.invite is not None
    assert seen.ringing_url == scene.invite.header("X-SAC-URL")


def test_panel_showed_the_call_connected_with_the_wait(scene: Scene) -> None:
    seen = scene.seen
    assert shown_protocol(scene.numbers["a"]) in seen.connected_item
    assert "Em atendimento" in seen.connected_item and "esperou" in seen.connected_item
    assert "Em atendimento" in seen.connected_live
    assert "esperou" in seen.connected_live and f"na fila {QUEUE}" in seen.connected_live


def test_actions_in_the_page_are_stored_and_served_by_the_api(scene: Scene) -> None:
    p = scene.protocol
    assert p["number"] == scene.numbers["a"]
    assert p["subject"] == "complaint"
    assert p["customer_document"] == CPF
    assert p["customer_name"] == "Maria Silva"
    assert p["notes"] == NOTE
    assert p["status"] == "in_progress"
    (change,) = [e for e in p["events"] if e["kind"] == "status"]
    assert change["actor"] == "ana" and change["to_status"] == "in_progress"
    assert change["internal_note"] == INTERNAL_NOTE
    fields = {e["data"]["field"] for e in p["events"] if e["kind"] == "field"}
    assert {"subject", "customer_document", "customer_name", "notes"} <= fields
    assert "Em andamento" in scene.seen.timeline
    assert "Ligação atendida" in scene.seen.timeline
    assert f"Atendente: {AGENT_NAME} (fila {QUEUE})" in scene.seen.timeline


def test_supervisor_saw_b_still_waiting_while_a_was_served(scene: Scene) -> None:
    seen = scene.seen
    assert shown_protocol(scene.numbers["b"]) in seen.supervisor_after_waiting
    assert shown_protocol(scene.numbers["a"]) not in seen.supervisor_after_waiting
    assert AGENT_NAME in seen.supervisor_after_active
    assert shown_protocol(scene.numbers["a"]) in seen.supervisor_after_active
    assert grouped_phone(scene.callers["a"].caller_num) in seen.supervisor_after_active


def test_pages_and_service_logged_no_errors(scene: Scene) -> None:
    assert scene.seen.console_errors == []
    assert service_errors(scene.service) == []
