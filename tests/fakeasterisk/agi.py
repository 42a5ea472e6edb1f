"""The Asterisk side of a FastAGI session, driven by a test.

Sends the agi_* block exactly as Asterisk 22 does (22 lines, then agi_arg_N, then a
blank line), answers each command the way Asterisk answers it, and can press keys
or hang up at a chosen point of the playback.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from dataclasses import dataclass, field

HANGUP = "HANGUP"


@dataclass
class FakeCallScript:
    """What the fake caller does.

    ``keys``: index of the STREAM FILE command (0-based, counted over the session)
    at which the caller presses a key (its value) or hangs up (``HANGUP``).
    ``wait_keys``: answers to successive WAIT FOR DIGIT commands (None = timeout).
    ``sighup``: True sends the in-band ``HANGUP`` line (AGISIGHUP=yes) before the
    result; False answers ``200 result=-1`` and then 511 (AGISIGHUP=no).
    """

    keys: dict[int, str] = field(default_factory=dict)
    wait_keys: list[str | None] = field(default_factory=list)
    sighup: bool = False


@dataclass
class FakeCallResult:
    commands: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    played: list[str] = field(default_factory=list)
    first_audio_at: float | None = None  # monotonic time of the first STREAM FILE
    connected_at: float = 0.0
    closed_by_server: bool = False
    linkedid: str = ""

    @property
    def first_audio_latency(self) -> float | None:
        if self.first_audio_at is None:
            return None
        return self.first_audio_at - self.connected_at

    def digits_between(
        self, start: str = "sac/protocol-intro", end: str = "sac/protocol-outro"
    ) -> list[str]:
        """Each reading of the number: the digits played between intro and outro."""
        readings: list[str] = []
        current: list[str] | None = None
        for name in self.played:
            if name == start:
                current = []
            elif name == end and current is not None:
                readings.append("".join(current))
                current = None
            elif current is not None and name.startswith("digits/"):
                current.append(name.rsplit("/", 1)[1])
        return readings


def agi_headers(
    route: str,
    *,
    host: str = "127.0.0.1",
    port: int = 4573,
    args: tuple[str, ...] = (),
    uniqueid: str = "1700000000.1",
    callerid: str = "11987654321",
    calleridname: str = "Maria Silva",
    dnid: str = "08001234567",
    channel: str = "PJSIP/trunk-00000001",
    extension: str | None = None,
) -> bytes:
    request = f"agi://{host}:{port}/{route}"
    if args:
        request += "," + ",".join(args)
    lines = [
        ("agi_network", "yes"),
        ("agi_network_script", route),
        ("agi_request", request),
        ("agi_channel", channel),
        ("agi_language", "pt_BR"),
        ("agi_type", "PJSIP"),
        ("agi_uniqueid", uniqueid),
        ("agi_version", "22.10.1"),
        ("agi_callerid", callerid),
        ("agi_calleridname", calleridname),
        ("agi_callingpres", "0"),
        ("agi_callingani2", "0"),
        ("agi_callington", "0"),
        ("agi_callingtns", "0"),
        ("agi_dnid", dnid),
        ("agi_rdnis", "unknown"),
        ("agi_context", "sac-entry"),
        ("agi_extension", dnid if extension is None else extension),
        ("agi_priority", "4"),
        ("agi_enhanced", "0.0"),
        ("agi_accountcode", ""),
        ("agi_threadid", "140234567890"),
    ]
    lines += [(f"agi_arg_{i}", value) for i, value in enumerate(args, start=1)]
    return ("".join(f"{k}: {v}\n" for k, v in lines) + "\n").encode()


_CMD = re.compile(r"^(?P<verb>[A-Z]+(?: [A-Z]+)?)\s*(?P<rest>.*)$")


async def fake_call(
    host: str,
    port: int,
    route: str = "protocol",
    script: FakeCallScript | None = None,
    *,
    args: tuple[str, ...] = (),
    timeout: float = 10.0,
    **header_kwargs: str,
) -> FakeCallResult:
    """Run one FastAGI session against the server and return what it did."""
    script = script or FakeCallScript()
    result = FakeCallResult(linkedid=header_kwargs.get("uniqueid", "1700000000.1"))
    reader, writer = await asyncio.open_connection(host, port)
    result.connected_at = time.monotonic()
    writer.write(agi_headers(route, port=port, args=args, **header_kwargs))
    await writer.drain()
    stream_index = 0
    wait_index = 0
    dead = False
    try:
        async with asyncio.timeout(timeout):
            while True:
                raw = await reader.readline()
                if not raw:
                    result.closed_by_server = True
                    break
                command = raw.decode().rstrip("\n")
                result.commands.append(command)
                if dead:
                    writer.write(
                        b"511 Command Not Permitted on a dead channel or intercept routine\n"
                    )
                    await writer.drain()
                    continue
                reply = _answer(command, script, result, stream_index, wait_index)
                if command.startswith("STREAM FILE"):
                    if result.first_audio_at is None:
                        result.first_audio_at = time.monotonic()
                    stream_index += 1
                if command.startswith("WAIT FOR DIGIT"):
                    wait_index += 1
                if reply == HANGUP:
                    dead = True
                    if script.sighup:
                        writer.write(b"HANGUP\n")
                    writer.write(b"200 result=-1 endpos=1200\n")
                else:
                    writer.write(reply.encode() + b"\n")
                await writer.drain()
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    return result


def _answer(
    command: str,
    script: FakeCallScript,
    result: FakeCallResult,
    stream_index: int,
    wait_index: int,
) -> str:
    match = _CMD.match(command)
    if not match:
        return "510 Invalid or unknown command"
    verb, rest = match["verb"], match["rest"]
    try:
        parts = shlex.split(rest)
    except ValueError:
        return "520 Invalid command syntax.  Proper usage not available."
    if verb == "SET VARIABLE":
        if len(parts) != 2:
            return "520 Invalid command syntax.  Proper usage not available."
        result.variables[parts[0]] = parts[1]
        return "200 result=1"
    if verb == "GET VARIABLE":
        value = result.variables.get(parts[0]) if parts else None
        if parts and parts[0] == "CHANNEL(linkedid)":
            value = result.linkedid
        return "200 result=0" if value is None else f"200 result=1 ({value})"
    if verb == "STREAM FILE":
        result.played.append(parts[0])
        key = script.keys.get(stream_index)
        if key == HANGUP:
            return HANGUP
        escape = parts[1] if len(parts) > 1 else ""
        if key and key in escape:
            return f"200 result={ord(key)} endpos=4000"
        return "200 result=0 endpos=8000"
    if verb == "WAIT FOR":  # "WAIT FOR DIGIT 3000"
        key = script.wait_keys[wait_index] if wait_index < len(script.wait_keys) else None
        if key == HANGUP:
            return HANGUP
        return f"200 result={ord(key)}" if key else "200 result=0"
    if verb == "VERBOSE":
        return "200 result=1"
    return "510 Invalid or unknown command"
