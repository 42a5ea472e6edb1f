"""The dialplan's retry of the protocol route, on the real Asterisk (issue #8 item 6).

A stand-in FastAGI server plays a sac-ivr that dies after storing the number and
before telling Asterisk: it closes the first ``protocol`` connection without a
word (Asterisk ends the AGI with AGISTATUS=SUCCESS and neither SAC_PROTOCOL nor
SAC_RESULT). The dialplan must ask again at once, with ``retry``, and the caller then
goes on with the number the retry gives, straight to the menu. A route that answers
SAC_RESULT=ERROR is not asked again (the caller hears the fallback at once).
"""

from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass, field

import pytest

from tests.asterisk.ami import AmiClient, Message
from tests.asterisk.audio import PromptLibrary
from tests.asterisk.instance import AsteriskInstance
from tests.asterisk.sipp import Dtmf, SipCall

PROTOCOL = "20261122000123"
MENU = "sac/menu-main"
UNAVAILABLE = "sac/protocol-unavailable"


@dataclass
class CrashingAgi:
    """``first``: what the first protocol request of a call gets: "drop" (closed
    unanswered) or "error" (SAC_RESULT=ERROR). A retry gets the number."""

    port: int
    first: str = "drop"
    requests: list[tuple[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        stub = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                headers = {}
                for raw in self.rfile:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if not line:
                        break
                    key, _, value = line.partition(":")
                    headers[key.strip()] = value.strip()
                args = [headers[f"agi_arg_{i}"] for i in range(1, 10) if f"agi_arg_{i}" in headers]
                route = headers.get("agi_network_script", "").strip("/")
                with stub.lock:
                    stub.requests.append((route, args))
                if route == "protocol" and "retry" not in args[1:]:
                    if stub.first == "drop":
                        return  # sac-ivr killed after its commit: not a word
                    answers = [("SAC_RESULT", "ERROR")]
                elif route == "protocol":
                    answers = [("SAC_PROTOCOL", PROTOCOL), ("SAC_RESULT", "OK")]
                else:
                    answers = [("SAC_RESULT", "OK")]
                for name, value in answers:
                    self.wfile.write(f'SET VARIABLE {name} "{value}"\n'.encode())
                    self.wfile.flush()
                    self.rfile.readline()

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Outcome:
    requests: list[tuple[str, list[str]]]
    heard: list[str]
    joined: Message
    varsets: list[Message]


def _call(
    asterisk: AsteriskInstance, ami: AmiClient, prompts: PromptLibrary, first: str
) -> Outcome:
    stub = CrashingAgi(asterisk.agi_port, first=first)
    call = SipCall(asterisk, prompts=prompts, dtmf=[Dtmf("0", during=MENU, delay=0.5)])
    since = ami.mark()
    try:
        call.start()
        joined = ami.wait_event(
            {"Event": "QueueCallerJoin", "CallerIDNum": call.caller_num}, timeout=60, since=since
        )
        ami.action("Hangup", Channel=joined["Channel"])
        result = call.wait(20)
    finally:
        call.stop()
        stub.close()
    varsets = ami.find_events(
        {"Event": "VarSet", "Variable": "SAC_PROTOCOL", "Linkedid": joined["Linkedid"]}, since
    )
    return Outcome(list(stub.requests), prompts.sequence(result.audio), joined, varsets)


@pytest.fixture(scope="module")
def dropped(
    asterisk: AsteriskInstance, ami: AmiClient, prompts: PromptLibrary, sipp_available: None
) -> Outcome:
    return _call(asterisk, ami, prompts, "drop")


@pytest.fixture(scope="module")
def refused(
    asterisk: AsteriskInstance,
    ami: AmiClient,
    prompts: PromptLibrary,
    dropped: Outcome,  # one stand-in at a time on the AGI port
) -> Outcome:
    return _call(asterisk, ami, prompts, "error")


def test_protocol_route_is_asked_again_only_when_it_ended_without_an_answer(
    dropped: Outcome, refused: Outcome
) -> None:
    linkedid = dropped.joined["Linkedid"]
    assert dropped.requests == [
        ("protocol", [linkedid]),
        ("protocol", [linkedid, "retry"]),
        ("subject", [PROTOCOL, "attendant", linkedid]),
    ]
    # the retry's number is the call's: straight to the menu, no fallback prompt
    assert dropped.heard == [MENU, "sac/transfer-attendant"], dropped.heard
    assert any(e.get("Value") == PROTOCOL for e in dropped.varsets), dropped.varsets
    # SAC_RESULT=ERROR is an answer: no second try, the fallback at once
    linkedid = refused.joined["Linkedid"]
    assert refused.requests == [("protocol", [linkedid])]
    assert refused.heard == [UNAVAILABLE, MENU, "sac/transfer-attendant"], refused.heard
