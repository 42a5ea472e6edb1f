"""Calls into the instance: a SIPp UAC for signalling, the test's own RTP socket.

SIPp (Debian ``sip-tester``) sends the INVITE/ACK/BYE of ``scenarios/uac.xml``; the SDP
names a UDP port that :class:`RtpPeer` owns. The peer records every RTP packet
Asterisk sends (µ-law payload with arrival times), sends the caller's side (20 ms of
µ-law silence every 20 ms, so strict RTP learns the address) and RFC 4733 DTMF
events, at a given time or once a given prompt has been heard.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import select
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.asterisk.audio import ANCHOR, PromptLibrary, canonical_ulaw
from tests.asterisk.instance import AGENT_ENDPOINTS, AsteriskInstance, free_port

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"
UAC_SCENARIO = SCENARIOS_DIR / "uac.xml"
UAS_AGENT_SCENARIO = SCENARIOS_DIR / "uas_agent.xml"
PCMU = 0
TELEPHONE_EVENT = 101  # as offered in uac.xml
FRAME = 160  # 20 ms of 8 kHz µ-law
DTMF_EVENTS = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
}
_caller_numbers = itertools.count(1)


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_media_port() -> int:
    """A UDP port for SIPp's ``-mp``: SIPp binds its audio socket there AND a video
    socket two ports up; a busy ``port + 2`` (say another call's RTP peer) made SIPp
    exit before sending the INVITE ("Unable to bind video RTP socket")."""
    for _ in range(200):
        port = free_port(socket.SOCK_DGRAM)
        if port + 2 <= 65535 and _udp_free(port + 2):
            return port
    raise RuntimeError("no UDP port with a free port + 2 for SIPp's media sockets")


@dataclass(frozen=True)
class Dtmf:
    """A key the caller presses: ``at`` seconds after the call starts; or ``delay``
    seconds after the prompt ``after`` was heard to its end; or ``delay`` seconds after
    the prompt ``during`` began (to cut it short). Prompts are looked for after the
    previous key's prompt, so the same prompt can trigger several keys in turn."""

    digit: str
    at: float | None = None
    after: str | None = None
    during: str | None = None
    delay: float = 0.3
    duration_ms: int = 160


@dataclass(frozen=True)
class RtpPacket:
    time: float  # time.monotonic() on arrival
    seq: int
    timestamp: int
    payload_type: int
    marker: bool
    payload: bytes


class RtpPeer:
    """The caller's media end: a UDP socket bound to 127.0.0.1 on a free port."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        dtmf: Sequence[Dtmf] = (),
        prompts: PromptLibrary | None = None,
        remote_hint: Callable[[], tuple[str, int] | None] | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port: int = self.sock.getsockname()[1]
        self.packets: list[RtpPacket] = []
        self.remote: tuple[str, int] | None = None
        self.sent_dtmf: list[tuple[str, float]] = []
        self.started = 0.0
        self._plan = list(dtmf)
        self._prompts = prompts
        self._remote_hint = remote_hint
        self._audio = bytearray()  # PT 0 payloads in arrival order, for live triggers
        self._heard_at: tuple[tuple[str, int], float] | None = None
        self._current = Dtmf("0", at=0)
        self._event_ts = self._event_duration = 0
        self._search_from = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._seq = 0x1234
        self._ts = 0x10000
        self._ssrc = 0x5AC1F00D
        for step in self._plan:
            if [step.at, step.after, step.during].count(None) != 2:
                raise ValueError(f"{step}: give exactly one of at, after, during")
            if step.at is None and prompts is None:
                raise ValueError("Dtmf(after=/during=...) needs a PromptLibrary")

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.sock.close()

    # -- what was received
    def audio(self) -> bytes:
        """Every µ-law payload Asterisk sent, in RTP sequence order."""
        return b"".join(p.payload for p in self._ordered() if p.payload_type == PCMU)

    def audio_times(self) -> list[tuple[int, float]]:
        """(byte offset in :meth:`audio`, arrival time relative to the call start)."""
        out, offset = [], 0
        for p in self._ordered():
            if p.payload_type == PCMU:
                out.append((offset, p.time - self.started))
                offset += len(p.payload)
        return out

    def _ordered(self) -> list[RtpPacket]:
        # unwrap 16-bit sequence numbers; loopback rarely reorders but be exact
        out, base, last = [], 0, None
        for p in self.packets:
            if last is not None and p.seq < last and last - p.seq > 0x8000:
                base += 0x10000
            last = p.seq
            out.append((base + p.seq, p))
        return [p for _, p in sorted(out, key=lambda x: x[0])]

    # -- the loop
    def _run(self) -> None:
        next_tx = time.monotonic()
        dtmf_frames: list[bytes] = []
        dtmf_marker = False
        while not self._stop.is_set():
            timeout = max(0.0, next_tx - time.monotonic())
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if ready:
                self._receive()
                continue
            next_tx += FRAME / 8000
            if self.remote is None and self._remote_hint is not None:
                self.remote = self._remote_hint()  # from the SDP answer: talk first
            if self.remote is None:
                continue
            if not dtmf_frames:
                digit = self._due_dtmf()
                if digit is not None:
                    dtmf_frames = self._dtmf_payloads(digit)
                    dtmf_marker = True
                    self._event_ts = self._ts
            if dtmf_frames:
                payload = dtmf_frames.pop(0)
                self._send(TELEPHONE_EVENT, payload, self._event_ts, marker=dtmf_marker)
                dtmf_marker = False
                if not dtmf_frames:  # the event's time has passed on the media clock
                    self._ts = self._event_ts + self._event_duration
                continue
            self._send(PCMU, b"\xff" * FRAME, self._ts)
            self._ts += FRAME

    def _receive(self) -> None:
        try:
            data, addr = self.sock.recvfrom(4096)
        except OSError:
            return
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        cc = data[0] & 0x0F
        ext = data[0] & 0x10
        pt = data[1] & 0x7F
        marker = bool(data[1] & 0x80)
        seq, ts = struct.unpack("!HI", data[2:8])
        start = 12 + 4 * cc
        if ext and len(data) >= start + 4:
            start += 4 + 4 * struct.unpack("!H", data[start + 2 : start + 4])[0]
        payload = data[start:]
        if data[0] & 0x20 and payload:  # padding
            payload = payload[: -payload[-1]]
        self.packets.append(RtpPacket(time.monotonic(), seq, ts, pt, marker, payload))
        if self.remote is None:
            self.remote = addr
        if pt == PCMU:
            self._audio += canonical_ulaw(payload)

    def _due_dtmf(self) -> str | None:
        if not self._plan:
            return None
        step = self._plan[0]
        now = time.monotonic() - self.started
        if step.at is not None:
            due = now >= step.at
        elif step.after is not None:
            due = self._heard_since(step.after, step.delay, whole=True)
        else:
            assert step.during is not None
            due = self._heard_since(step.during, step.delay, whole=False)
        if not due:
            return None
        self._plan.pop(0)
        self.sent_dtmf.append((step.digit, now))
        self._current = step
        return step.digit

    def _heard_since(self, name: str, delay: float, *, whole: bool) -> bool:
        """Has ``name`` (whole, or its first 50 ms) arrived, ``delay`` seconds ago?"""
        assert self._prompts is not None
        needle = self._prompts.ulaw(name)
        if not whole:
            needle = needle[:ANCHOR]
        pos = bytes(self._audio).find(needle, self._search_from)  # canonical: see audio.py
        if pos < 0:
            return False
        if self._heard_at is None or self._heard_at[0] != (name, pos):
            self._heard_at = ((name, pos), time.monotonic())
        if time.monotonic() - self._heard_at[1] < delay:
            return False
        self._search_from = pos + len(needle)
        self._heard_at = None
        return True

    def _dtmf_payloads(self, digit: str) -> list[bytes]:
        event = DTMF_EVENTS[digit.upper()]
        duration = int(8 * self._current.duration_ms)
        frames, d = [], 0
        while d < duration:
            d = min(d + FRAME, duration)
            frames.append(struct.pack("!BBH", event, 10, d))
        frames += [struct.pack("!BBH", event, 0x80 | 10, duration)] * 3  # end, sent 3 times
        self._event_duration = duration
        return frames

    def _send(self, pt: int, payload: bytes, ts: int, *, marker: bool = False) -> None:
        assert self.remote is not None
        header = struct.pack(
            "!BBHII",
            0x80,
            (0x80 if marker else 0) | pt,
            self._seq & 0xFFFF,
            ts & 0xFFFFFFFF,
            self._ssrc,
        )
        self._seq += 1
        with contextlib.suppress(OSError):
            self.sock.sendto(header + payload, self.remote)


@dataclass
class CallResult:
    """What one SIPp party got once its call ended."""

    returncode: int
    audio: bytes  # µ-law Asterisk sent, in RTP order
    audio_times: list[tuple[int, float]]
    packets: list[RtpPacket]
    sent_dtmf: list[tuple[str, float]]
    bye_received: bool  # Asterisk hung up (the test's AMI Hangup, or the dialplan)
    duration: float
    log: str
    work_dir: Path

    def heard(self, prompts: PromptLibrary) -> list[str]:
        """Names of the prompts heard, in order (see :meth:`PromptLibrary.sequence`)."""
        return prompts.sequence(self.audio)


class _SippParty:
    """A SIPp process (one call) plus the RtpPeer that owns its media port."""

    instance: AsteriskInstance
    work_dir: Path
    timeout: float
    rtp: RtpPeer
    _proc: subprocess.Popen[bytes] | None

    def _setup(self, name: str, dtmf: Sequence[Dtmf], prompts: PromptLibrary | None) -> None:
        self.work_dir = self.instance.work_dir / name
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.rtp = RtpPeer(dtmf=dtmf, prompts=prompts, remote_hint=self._remote_rtp)
        self._proc = None

    def _remote_rtp(self) -> tuple[str, int] | None:
        """Asterisk's RTP address from its SDP (logged by the scenario)."""
        try:
            text = (self.work_dir / "actions.log").read_text(errors="replace")
        except OSError:
            return None
        m = re.search(r"REMOTE_RTP .* PORT (\d+)", text)
        return ("127.0.0.1", int(m.group(1))) if m else None

    def _common_args(self, scenario: Path, sip_port: int) -> list[str]:
        return [
            *("-sf", str(scenario)),
            *("-i", "127.0.0.1", "-p", str(sip_port)),
            # SIPp's own media sockets are unused (the SDP names rtp.port) but must bind
            *("-mi", "127.0.0.1", "-mp", str(free_media_port())),
            *("-key", "rtp_port", str(self.rtp.port)),
            *("-m", "1", "-l", "1"),
            *("-timeout", f"{int(self.timeout + 5)}s", "-nostdin"),
            *("-trace_msg", "-message_file", str(self.work_dir / "messages.log")),
            *("-trace_logs", "-log_file", str(self.work_dir / "actions.log")),
            *("-trace_err", "-error_file", str(self.work_dir / "errors.log")),
        ]

    def command(self) -> list[str]:
        raise NotImplementedError

    def _spawn(self) -> None:
        self.rtp.start()
        with open(self.work_dir / "sipp.out", "wb") as out:
            self._proc = subprocess.Popen(
                self.command(),
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float | None = None) -> CallResult:
        """Wait for SIPp to end (the call hung up) and return what this party got."""
        assert self._proc is not None, "start() first"
        try:
            rc = self._proc.wait(timeout if timeout is not None else self.timeout + 10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            rc = self._proc.wait()
        time.sleep(0.05)  # the last RTP packets
        self.rtp.stop()
        actions = self.work_dir / "actions.log"
        log = actions.read_text(errors="replace") if actions.is_file() else ""
        return CallResult(
            returncode=rc,
            audio=self.rtp.audio(),
            audio_times=self.rtp.audio_times(),
            packets=list(self.rtp.packets),
            sent_dtmf=list(self.rtp.sent_dtmf),
            bye_received="BYE_RECEIVED" in log,
            duration=time.monotonic() - self.rtp.started,
            log=log,
            work_dir=self.work_dir,
        )

    def stop(self) -> None:
        """Kill SIPp if still running (cleanup)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self.rtp.stop()

    def received_request(self, method: str = "INVITE") -> SipMessage | None:
        """The first SIP request of ``method`` SIPp received (from its message trace)."""
        path = self.work_dir / "messages.log"
        text = path.read_text(errors="replace") if path.is_file() else ""
        for block in re.split(r"\n-{20,}[^\n]*\n", text):
            body = block.split("bytes :", 1)[-1].lstrip("\r\n")
            if body.startswith(f"{method} ") and "message received" in block:
                return SipMessage.parse(body)
        return None


@dataclass(frozen=True)
class SipMessage:
    start_line: str
    headers: list[tuple[str, str]]

    @classmethod
    def parse(cls, text: str) -> SipMessage:
        lines = text.replace("\r\n", "\n").split("\n")
        headers = []
        for line in lines[1:]:
            if not line.strip():
                break
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        return cls(lines[0].strip(), headers)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def from_display_name(self) -> str | None:
        m = re.match(r'\s*"([^"]*)"', self.header("From") or "")
        return m.group(1) if m else None


class SipCall(_SippParty):
    """One SIPp call into the instance's ``sac-entry`` (any extension).

    ``caller_num`` is unique per call by default, so a test finds the call's channel
    in AMI events (``CallerIDNum``). ``hangup_after`` (seconds, None = wait) makes the
    caller hang up; otherwise the call lasts until Asterisk hangs up (or a test does it
    with AMI ``Hangup``) or ``timeout`` runs out.
    """

    def __init__(
        self,
        instance: AsteriskInstance,
        *,
        extension: str = "s",
        caller_num: str | None = None,
        caller_name: str = "sac-ivr test",
        dtmf: Sequence[Dtmf] = (),
        hangup_after: float | None = None,
        timeout: float = 120.0,
        prompts: PromptLibrary | None = None,
    ) -> None:
        self.instance = instance
        self.extension = extension
        self.caller_num = caller_num or f"1199990{next(_caller_numbers):04d}"
        self.caller_name = caller_name
        self.hangup_after = hangup_after
        self.timeout = timeout
        self._setup(f"call-{self.caller_num}", dtmf, prompts)

    def command(self) -> list[str]:
        scenario = self.work_dir / "uac.xml"
        seconds = self.hangup_after if self.hangup_after is not None else self.timeout
        text = re.sub(
            r'timeout="\d+" ontimeout="hangup"',
            f'timeout="{int(seconds * 1000)}" ontimeout="hangup"',
            UAC_SCENARIO.read_text(),
        )
        scenario.write_text(text)
        return [
            "sipp",
            f"127.0.0.1:{self.instance.sip_port}",
            *self._common_args(scenario, free_port(socket.SOCK_DGRAM)),
            *("-s", self.extension),
            *("-key", "caller_num", self.caller_num),
            *("-key", "caller_name", self.caller_name),
        ]

    def start(self) -> SipCall:
        self._spawn()
        return self


class SipAgent(_SippParty):
    """An agent's phone: a SIPp UAS on the port of the instance's agent endpoint
    ``sac-agent-<index+1>``. It answers one call and waits for the BYE. Put it in the
    queue with ``ami.action("QueueAdd", Queue="sac-agents", Interface=agent.interface)``.
    ``ring_seconds``: how long it rings (180 Ringing) before it answers.
    """

    def __init__(
        self,
        instance: AsteriskInstance,
        *,
        index: int = 0,
        dtmf: Sequence[Dtmf] = (),
        timeout: float = 120.0,
        prompts: PromptLibrary | None = None,
        ring_seconds: float = 0.3,
    ) -> None:
        self.instance = instance
        self.index = index
        self.timeout = timeout
        self.ring_seconds = ring_seconds
        self._setup(f"agent-{self.endpoint}-{next(_caller_numbers)}", dtmf, prompts)

    @property
    def endpoint(self) -> str:
        return AGENT_ENDPOINTS[self.index]

    @property
    def interface(self) -> str:
        return f"PJSIP/{self.endpoint}"

    def command(self) -> list[str]:
        scenario = self.work_dir / "uas_agent.xml"
        text = re.sub(
            r'<pause milliseconds="\d+"/>',
            f'<pause milliseconds="{int(self.ring_seconds * 1000)}"/>',
            UAS_AGENT_SCENARIO.read_text(),
        )
        scenario.write_text(text)
        return [
            "sipp",
            *self._common_args(scenario, self.instance.ports.agents[self.index]),
        ]

    def start(self) -> SipAgent:
        self._spawn()
        return self
