"""The success path of the dialplan, with a stand-in FastAGI server (tests.asterisk.
agi_stub) on the AGI port instead of sac-ivr: the number is issued, the menu choice
recorded, and the agent's phone gets the call with the protocol in its display
("P <number>") and SIP headers, and hears it whispered before the bridge, unless the
dialplan global SAC_AGENT_WHISPER is "no" (a second call, with the global set over AMI).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.asterisk.agi_stub import AgiStub
from tests.asterisk.ami import AmiClient, Message
from tests.asterisk.audio import PromptLibrary
from tests.asterisk.instance import AsteriskInstance
from tests.asterisk.sipp import CallResult, Dtmf, SipAgent, SipCall, SipMessage

PROTOCOL = "20261122000123"
MENU = "sac/menu-main"


@dataclass
class AgentCall:
    stub_routes: list[tuple[str, list[str]]]
    caller: CallResult
    agent: CallResult
    invite: SipMessage | None
    connect: Message
    varsets: list[Message]


@pytest.fixture(scope="module")
def stub(asterisk: AsteriskInstance) -> Iterator[AgiStub]:
    with AgiStub(asterisk.agi_port, protocol=PROTOCOL) as agi:
        yield agi


def _agent_call(
    asterisk: AsteriskInstance, ami: AmiClient, prompts: PromptLibrary, stub: AgiStub
) -> AgentCall:
    """One SIP call: 0 in the menu, the agent answers, the test hangs up."""
    agent = SipAgent(asterisk, index=0, prompts=prompts).start()
    call = SipCall(asterisk, dtmf=[Dtmf("0", during=MENU, delay=0.5)], prompts=prompts)
    first_request = len(stub.routes())
    try:
        added = ami.action("QueueAdd", Queue="sac-agents", Interface=agent.interface)
        assert added["Response"] == "Success", added
        since = ami.mark()
        call.start()
        connect = ami.wait_event(
            {"Event": "AgentConnect", "CallerIDNum": call.caller_num}, timeout=60, since=since
        )
        time.sleep(0.5)  # a moment of bridged call
        ami.action("Hangup", Channel=connect["Channel"])
        caller, agent_result = call.wait(20), agent.wait(20)
        return AgentCall(
            stub_routes=stub.routes()[first_request:],
            caller=caller,
            agent=agent_result,
            invite=agent.received_request("INVITE"),
            connect=connect,
            varsets=ami.find_events({"Event": "VarSet", "Variable": "SAC_PROTOCOL"}, since),
        )
    finally:
        ami.action("QueueRemove", Queue="sac-agents", Interface=agent.interface)
        call.stop()
        agent.stop()


@pytest.fixture(scope="module")
def agent_call(
    asterisk: AsteriskInstance,
    ami: AmiClient,
    prompts: PromptLibrary,
    stub: AgiStub,
    sipp_available: None,
) -> AgentCall:
    """The default settings (no SAC_AGENT_WHISPER global: the whisper is on)."""
    return _agent_call(asterisk, ami, prompts, stub)


@pytest.fixture(scope="module")
def quiet_agent_call(
    asterisk: AsteriskInstance,
    ami: AmiClient,
    prompts: PromptLibrary,
    stub: AgiStub,
    agent_call: AgentCall,  # after it: the global below must not reach that call
) -> Iterator[AgentCall]:
    """The dialplan global SAC_AGENT_WHISPER=no (AMI Setvar without a channel sets a
    global), cleared again afterwards."""
    ami.action("Setvar", Variable="SAC_AGENT_WHISPER", Value="no")
    try:
        yield _agent_call(asterisk, ami, prompts, stub)
    finally:
        ami.action("Setvar", Variable="SAC_AGENT_WHISPER", Value="")


def test_routes_called_with_the_number(agent_call: AgentCall) -> None:
    # protocol and subject get the call's linkedid (ties the number to the call log;
    # sac-ivr only changes the protocol issued to the same call)
    linkedid = agent_call.connect["Linkedid"]
    assert agent_call.stub_routes == [
        ("protocol", [linkedid]),
        ("subject", [PROTOCOL, "attendant", linkedid]),
    ]


def test_caller_goes_straight_to_the_menu(agent_call: AgentCall, prompts: PromptLibrary) -> None:
    # no "unavailable" prompt when the number was issued (the stub itself plays nothing)
    assert prompts.sequence(agent_call.caller.audio) == [MENU, "sac/transfer-attendant"]


def test_agent_invite_carries_the_protocol(agent_call: AgentCall) -> None:
    invite = agent_call.invite
    assert invite is not None, f"no INVITE in {agent_call.agent.work_dir}"
    assert invite.header("X-SAC-Protocol") == PROTOCOL
    assert invite.header("X-SAC-URL") == f"http://127.0.0.1:8080/agent/calls/{PROTOCOL}"
    assert invite.from_display_name == f"P {PROTOCOL}"


def test_agent_hears_the_number_before_the_bridge(
    agent_call: AgentCall, prompts: PromptLibrary
) -> None:
    heard = prompts.find(agent_call.agent.audio)
    assert heard and heard[0].name == "sac/agent-whisper", heard
    assert prompts.digits(agent_call.agent.audio) == PROTOCOL


def test_ami_shows_the_protocol_and_the_agent(agent_call: AgentCall) -> None:
    assert any(e.get("Value") == PROTOCOL for e in agent_call.varsets)
    assert agent_call.connect["Queue"] == "sac-agents"
    assert agent_call.connect.get("Interface") == "PJSIP/sac-agent-1"
    assert agent_call.agent.bye_received and agent_call.caller.bye_received


def test_whisper_off_bridges_the_agent_at_once(
    quiet_agent_call: AgentCall, prompts: PromptLibrary
) -> None:
    """SAC_AGENT_WHISPER=no: the agent still gets the number on the phone (display,
    headers) but hears nothing of it: no whisper prompt and no digits."""
    heard = prompts.find(quiet_agent_call.agent.audio)
    assert "sac/agent-whisper" not in [h.name for h in heard], heard
    assert prompts.digits(quiet_agent_call.agent.audio) == ""
    # the call itself was the same: bridged, the protocol on the INVITE
    assert quiet_agent_call.connect["Interface"] == "PJSIP/sac-agent-1"
    invite = quiet_agent_call.invite
    assert invite is not None and invite.header("X-SAC-Protocol") == PROTOCOL
    assert invite.from_display_name == f"P {PROTOCOL}"
    assert quiet_agent_call.agent.bye_received and quiet_agent_call.caller.bye_received


def test_whisper_setting_is_inherited_by_the_agent_leg(
    agent_call: AgentCall, quiet_agent_call: AgentCall, ami: AmiClient
) -> None:
    """sac-sub-settings fills the default (yes) and hands the value to the agent's
    channel (__SAC_AGENT_WHISPER), where sac-agent-connect reads it."""
    values = {}
    for name, outcome in (("default", agent_call), ("off", quiet_agent_call)):
        linkedid = outcome.connect["Linkedid"]
        sets = ami.find_events(
            lambda e, lid=linkedid: (
                e.get("Event") == "VarSet"
                and e.get("Variable") == "__SAC_AGENT_WHISPER"
                and e.get("Linkedid") == lid
            )
        )
        values[name] = {e.get("Value") for e in sets}
    assert values == {"default": {"yes"}, "off": {"no"}}
