"""Issue #8 item 7: Asterisk with exactly the documented modules serves a whole call.

The session's Asterisk runs with ``dialplan/modules.conf.sample`` as its
modules.conf, unchanged (``autoload = no``): the list the README shows. With the
stand-in FastAGI server giving a number, one SIP caller presses 0, waits in the
empty queue (music on hold: ``musiconhold.conf.sample``, class ``sac-hold``), then
an agent's phone joins the queue and answers. Caller and agent must stay bridged,
each hearing the other (each RTP peer sends its own recognisable "voice"), until
the test hangs up: the system hangs up on nobody.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.asterisk.agi_stub import AgiStub
from tests.asterisk.ami import AmiClient, Message
from tests.asterisk.audio import PromptLibrary
from tests.asterisk.instance import PROJECT_DIR, AsteriskInstance
from tests.asterisk.sipp import PCMU, CallResult, Dtmf, RtpPeer, SipAgent, SipCall
from tests.asterisk.stale import AGENT_INDEX, clear_queue

PROTOCOL = "20261122000123"
MENU = "sac/menu-main"
QUEUE = "sac-agents"
WAIT_SECONDS = 3.0  # in the queue, alone, hearing music on hold
BRIDGED_SECONDS = 4.0  # caller and agent talking
MODULES_SAMPLE = PROJECT_DIR / "dialplan" / "modules.conf.sample"
# What each side "says": one distinct 20 ms µ-law frame, repeated (no 0x00/0x7f/0xff,
# which a decode/encode trip would change; a bridge that relays RTP changes nothing).
CALLER_VOICE = bytes(0x31 + i % 64 for i in range(160))
AGENT_VOICE = bytes(0xB1 + i % 64 for i in range(160))


def documented_modules(path: Path = MODULES_SAMPLE) -> list[str]:
    """The ``load =`` lines of modules.conf.sample, in order (without ``.so``)."""
    names = []
    for line in path.read_text().splitlines():
        m = re.match(r"\s*load\s*=>?\s*([\w-]+)\.so\b", line)
        if m:
            names.append(m.group(1))
    return names


class VoicePeer(RtpPeer):
    """An RTP peer that talks: every audio frame it sends is ``voice``."""

    def __init__(self, voice: bytes, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.voice = voice

    def _send(self, pt: int, payload: bytes, ts: int, *, marker: bool = False) -> None:
        super()._send(pt, self.voice if pt == PCMU else payload, ts, marker=marker)


def _talking(
    party: SipCall | SipAgent, voice: bytes, prompts: PromptLibrary, dtmf: Sequence[Dtmf] = ()
) -> None:
    """Give a SIPp party (not started yet) a talking RTP peer."""
    party.rtp.stop()  # the silent one, never started
    party.rtp = VoicePeer(voice, dtmf=dtmf, prompts=prompts, remote_hint=party._remote_rtp)


@dataclass
class Scene:
    joined: Message
    connect: Message
    joined_at: float
    agent_added_at: float
    connected_at: float
    both_up_after: bool  # both SIPp parties still in the call after BRIDGED_SECONDS
    ended_early: list[Message]  # Hangup/HangupRequest events before the test's hangup
    bridge_enters: list[Message]
    agent_interface: str
    caller: CallResult
    agent: CallResult


@pytest.fixture(scope="module")
def scene(
    asterisk: AsteriskInstance, ami: AmiClient, prompts: PromptLibrary, sipp_available: None
) -> Iterator[Scene]:
    press_0 = [Dtmf("0", during=MENU, delay=0.5)]
    caller = SipCall(asterisk, prompts=prompts, dtmf=press_0)
    _talking(caller, CALLER_VOICE, prompts, press_0)
    agent = SipAgent(asterisk, index=AGENT_INDEX, prompts=prompts, ring_seconds=0.3)
    _talking(agent, AGENT_VOICE, prompts)
    with AgiStub(asterisk.agi_port, protocol=PROTOCOL):
        agent.start()
        since = ami.mark()
        caller.start()
        try:
            joined = ami.wait_event(
                {"Event": "QueueCallerJoin", "CallerIDNum": caller.caller_num},
                timeout=60,
                since=since,
            )
            joined_at = time.monotonic()
            linkedid = joined["Linkedid"]
            clear_queue(ami, keep=joined["Channel"])
            time.sleep(WAIT_SECONDS)
            agent_added_at = time.monotonic()
            added = ami.action("QueueAdd", Queue=QUEUE, Interface=agent.interface)
            assert added["Response"] == "Success", added
            connect = ami.wait_event(
                {"Event": "AgentConnect", "CallerIDNum": caller.caller_num}, timeout=30, since=since
            )
            connected_at = time.monotonic()
            time.sleep(BRIDGED_SECONDS)
            both_up = caller.running() and agent.running()
            ended_early = ami.find_events(
                lambda e: (
                    e.get("Event") in ("Hangup", "HangupRequest", "SoftHangupRequest")
                    and e.get("Linkedid") == linkedid
                ),
                since,
            )
            bridge_enters = ami.find_events(
                lambda e: e.get("Event") == "BridgeEnter" and e.get("Linkedid") == linkedid, since
            )
            ami.action("Hangup", Channel=joined["Channel"])
            yield Scene(
                joined=joined,
                connect=connect,
                joined_at=joined_at,
                agent_added_at=agent_added_at,
                connected_at=connected_at,
                both_up_after=both_up,
                ended_early=ended_early,
                bridge_enters=bridge_enters,
                agent_interface=agent.interface,
                caller=caller.wait(20),
                agent=agent.wait(20),
            )
        finally:
            ami.action("QueueRemove", Queue=QUEUE, Interface=agent.interface)
            caller.stop()
            agent.stop()


def test_the_readme_list_is_the_file_and_asterisk_runs_exactly_it(
    asterisk: AsteriskInstance,
) -> None:
    documented = documented_modules()
    assert documented, f"no load lines in {MODULES_SAMPLE}"
    assert len(set(documented)) == len(documented)
    shown = asterisk.cli("module show like .so")
    running = re.findall(r"^(\w+)\.so\s", shown, re.M)
    assert sorted(running) == sorted(documented), shown
    # the two the issue found missing are there
    assert {"bridge_simple", "bridge_native_rtp", "res_musiconhold"} <= set(running)


def test_waiting_caller_hears_music_on_hold_not_silence(
    scene: Scene, asterisk: AsteriskInstance
) -> None:
    waiting = b"".join(
        p.payload
        for p in scene.caller.packets
        if p.payload_type == PCMU and scene.joined_at <= p.time < scene.agent_added_at
    )
    # audio kept coming while the caller was alone in the queue...
    assert len(waiting) >= 8000 * (WAIT_SECONDS - 1), len(waiting)
    # ...and it is the class sac-hold's music, played from its start
    music = PromptLibrary(asterisk.sounds_dir / "sac-hold")
    heard = music.find(waiting)
    assert heard and heard[0].name == "chimes", heard
    assert heard[0].end - heard[0].start >= 8000 * (WAIT_SECONDS - 1.5), heard
    silence = sum(waiting.count(b) for b in (b"\xff", b"\x7f"))
    assert silence < len(waiting) / 2, "mostly silence"


def test_answered_call_stays_bridged_with_audio_both_ways(scene: Scene) -> None:
    assert scene.both_up_after, "a party left the call before the test hung up"
    assert not scene.ended_early, scene.ended_early
    channels = {e["Channel"] for e in scene.bridge_enters}
    assert scene.joined["Channel"] in channels and len(channels) >= 2, scene.bridge_enters
    assert scene.connect["Interface"] == scene.agent_interface

    def heard_from_other(result: CallResult, voice: bytes) -> int:
        return sum(
            1
            for p in result.packets
            if p.payload_type == PCMU and p.payload == voice and p.time >= scene.connected_at
        )

    # at least half of the bridged seconds of each side's voice reached the other
    frames = int(BRIDGED_SECONDS / 2 / 0.020)
    assert heard_from_other(scene.caller, AGENT_VOICE) >= frames
    assert heard_from_other(scene.agent, CALLER_VOICE) >= frames
    # the hang-up was the test's: Asterisk then ended both legs
    assert scene.caller.bye_received and scene.agent.bye_received
