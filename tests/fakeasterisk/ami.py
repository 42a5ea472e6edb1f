"""A fake Asterisk Manager Interface on a real socket, driven by a test.

Speaks AMI the way Asterisk does: the ``Asterisk Call Manager/11.0.0`` banner,
``Login`` (then ``FullyBooted``), ``Ping``, ``CoreShowChannels`` and ``QueueStatus``
(event lists ending with their ``...Complete`` event), ``Originate`` (``Originate
successfully queued`` then, when async, an ``OriginateResponse`` event), ``Logoff``.
A test can push events or recorded traces, go silent (a half-open link: the socket
stays open, nothing is answered), drop every connection, or stop listening.

Traces are files under ``traces/`` in the wire format itself: ``Key: value`` lines,
a blank line after each message; lines starting with ``;`` are comments and are not
sent. :func:`trace_bytes` gives the bytes as Asterisk would send them (garbage
lines and extra blank lines included), :func:`load_trace` the messages as dicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRACES = Path(__file__).parent / "traces"
BANNER = "Asterisk Call Manager/11.0.0"


def trace_text(name: str) -> str:
    """The trace without its comment lines, with CRLF line ends."""
    lines = (TRACES / name).read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if not line.startswith(";")]
    return "\r\n".join(kept) + "\r\n\r\n"


def trace_bytes(name: str) -> bytes:
    return trace_text(name).encode("utf-8")


def parse_messages(text: str) -> list[dict[str, str]]:
    """Split wire text into messages (lines without ': ' are skipped, like Asterisk's peers)."""
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                messages.append(current)
                current = {}
            continue
        key, sep, value = line.partition(": ")
        if sep:
            current[key] = value
    if current:
        messages.append(current)
    return messages


def load_trace(name: str) -> list[dict[str, str]]:
    return parse_messages(trace_text(name))


async def wait_until(predicate: Any, timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate()`` until true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.005)


def encode(message: Mapping[str, Any]) -> bytes:
    lines = []
    for key, value in message.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{key}: {item}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    logged_in: bool = False
    silent: bool = False


@dataclass
class FakeAmi:
    username: str = "sac-ivr"
    secret: str = "Sup3r-S3cret-AMI"
    banner: str = BANNER
    # What CoreShowChannels lists (CoreShowChannel events, without ActionID).
    channels: list[dict[str, str]] = field(default_factory=list)
    # What QueueStatus lists (QueueParams / QueueMember / QueueEntry events).
    queue_status: list[dict[str, str]] = field(default_factory=list)
    silent: bool = False  # new connections read actions but answer nothing
    # Actions (lower case) answered "Invalid/unknown command", like an Asterisk whose
    # module is not loaded yet (app_queue's QueueStatus after a restart)
    refused: set[str] = field(default_factory=set)
    actions: list[dict[str, str]] = field(default_factory=list)  # every action received
    logins: int = 0
    failed_logins: int = 0
    connections_made: int = 0
    port: int = 0
    _server: asyncio.base_events.Server | None = None
    _conns: list[_Conn] = field(default_factory=list)

    # ------------------------------------------------------------ lifecycle
    async def start(self, port: int = 0) -> FakeAmi:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port or self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop_listening(self) -> None:
        """Refuse new connections (Asterisk down); current ones are dropped too."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.drop()

    async def close(self) -> None:
        await self.stop_listening()

    async def drop(self) -> None:
        """Cut every connection at once (a crash, a cable pulled with a RST)."""
        for conn in list(self._conns):
            conn.writer.transport.abort()
        self._conns.clear()

    def go_silent(self) -> None:
        """The current connections turn half-open: actions are read, never answered,
        and no event goes out. New connections work (the network path healed)."""
        for conn in self._conns:
            conn.silent = True

    # --------------------------------------------------------------- pushing
    @property
    def clients(self) -> int:
        return sum(1 for c in self._conns if c.logged_in)

    async def push(self, *events: Mapping[str, Any]) -> None:
        """Send events to every logged-in client."""
        await self.push_raw(b"".join(encode(e) for e in events))

    async def push_trace(self, name: str) -> None:
        await self.push_raw(trace_bytes(name))

    async def push_raw(self, data: bytes) -> None:
        for conn in self._conns:
            if conn.logged_in and not conn.silent and not conn.writer.is_closing():
                conn.writer.write(data)
                with contextlib.suppress(ConnectionError):
                    await conn.writer.drain()

    # -------------------------------------------------------------- waiting
    async def wait_for(self, predicate: Any, timeout: float = 5.0, what: str = "") -> None:
        await wait_until(predicate, timeout, f"fake AMI: {what}")

    async def wait_logins(self, count: int, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: self.logins >= count, timeout, f"{count} login(s)")

    def actions_named(self, name: str) -> list[dict[str, str]]:
        return [a for a in self.actions if a.get("Action", "").lower() == name.lower()]

    async def wait_action(self, name: str, count: int = 1, timeout: float = 5.0) -> None:
        await self.wait_for(
            lambda: len(self.actions_named(name)) >= count, timeout, f"{count} {name} action(s)"
        )

    # ------------------------------------------------------------- serving
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(reader, writer, silent=self.silent)
        self._conns.append(conn)
        self.connections_made += 1
        try:
            writer.write(f"{self.banner}\r\n".encode())
            await writer.drain()
            while True:
                message = await self._read_message(reader)
                if message is None:
                    return
                self.actions.append(message)
                if conn.silent:
                    continue
                if not await self._answer(conn, message):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            with contextlib.suppress(ValueError):
                self._conns.remove(conn)
            writer.transport.abort()

    @staticmethod
    async def _read_message(reader: asyncio.StreamReader) -> dict[str, str] | None:
        message: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if not raw:
                return None
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if message:
                    return message
                continue
            key, _, value = line.partition(":")
            message[key.strip()] = value.strip()

    async def _send(self, conn: _Conn, *messages: Mapping[str, Any]) -> None:
        conn.writer.write(b"".join(encode(m) for m in messages))
        await conn.writer.drain()

    async def _answer(self, conn: _Conn, action: dict[str, str]) -> bool:
        name = action.get("Action", "").lower()
        aid = {"ActionID": action["ActionID"]} if "ActionID" in action else {}
        if name == "login":
            if action.get("Username") == self.username and action.get("Secret") == self.secret:
                self.logins += 1
                conn.logged_in = True
                await self._send(
                    conn,
                    {"Response": "Success", **aid, "Message": "Authentication accepted"},
                    {
                        "Event": "FullyBooted",
                        "Privilege": "system,all",
                        "Uptime": "12",
                        "LastReload": "12",
                        "Status": "Fully Booted",
                    },
                )
                return True
            self.failed_logins += 1
            await self._send(conn, {"Response": "Error", **aid, "Message": "Authentication failed"})
            return False  # Asterisk closes the session after a failed login
        if not conn.logged_in:
            await self._send(
                conn, {"Response": "Error", **aid, "Message": "Missing action in request"}
            )
            return True
        if name in self.refused:
            await self._send(
                conn, {"Response": "Error", **aid, "Message": "Invalid/unknown command"}
            )
        elif name == "ping":
            await self._send(
                conn,
                {"Response": "Success", **aid, "Ping": "Pong", "Timestamp": f"{time.time():.6f}"},
            )
        elif name == "coreshowchannels":
            await self._send_list(
                conn,
                aid,
                "Channels will follow",
                [{"Event": "CoreShowChannel", **aid, **c} for c in self.channels],
                "CoreShowChannelsComplete",
            )
        elif name == "queuestatus":
            await self._send_list(
                conn,
                aid,
                "Queue status will follow",
                [{**e, **aid} for e in self.queue_status],
                "QueueStatusComplete",
            )
        elif name == "originate":
            await self._send(
                conn, {"Response": "Success", **aid, "Message": "Originate successfully queued"}
            )
            if action.get("Async", "").lower() in ("true", "yes", "1"):
                await self._send(
                    conn,
                    {
                        "Event": "OriginateResponse",
                        "Privilege": "call,all",
                        **aid,
                        "Response": "Success",
                        "Channel": action.get("Channel", ""),
                        "Context": action.get("Context", ""),
                        "Exten": action.get("Exten", ""),
                        "Reason": "4",
                        "Uniqueid": "1732290000.99",
                        "CallerIDNum": "<unknown>",
                        "CallerIDName": "<unknown>",
                    },
                )
        elif name == "logoff":
            await self._send(
                conn, {"Response": "Goodbye", **aid, "Message": "Thanks for all the fish."}
            )
            return False
        else:
            await self._send(
                conn, {"Response": "Error", **aid, "Message": "Invalid/unknown command"}
            )
        return True

    async def _send_list(
        self,
        conn: _Conn,
        aid: dict[str, str],
        message: str,
        items: Iterable[Mapping[str, Any]],
        complete: str,
    ) -> None:
        items = list(items)
        await self._send(
            conn,
            {"Response": "Success", **aid, "EventList": "start", "Message": message},
            *items,
            {"Event": complete, **aid, "EventList": "Complete", "ListItems": str(len(items))},
        )
