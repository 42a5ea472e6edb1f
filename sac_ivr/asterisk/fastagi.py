"""A FastAGI server on panoramisk, hardened against panoramisk 1.4's failures.

What is fixed here, and why:

1. Header read: panoramisk loops on ``reader.read()`` until it sees a blank line;
   a peer that closes first makes it spin on ``b''`` for ever and freezes the whole
   event loop (a port scan or a TCP health check is enough). Ours reads line by
   line, stops on EOF, gives the peer ``header_timeout`` seconds for the whole block
   and refuses blocks larger than ``MAX_HEADER_BYTES``.
2. Routes: panoramisk wraps plain functions with ``asyncio.coroutine``, gone since
   Python 3.11. ``add_route`` refuses anything but ``async def`` at start-up.
3. Hangup: with ``AGISIGHUP`` on, Asterisk writes ``HANGUP`` in-band and then the
   real result; panoramisk takes ``HANGUP`` as the answer and every later reply
   drifts by one. We consume the real result, mark the call hung up and raise
   :class:`AgiHangup`; nothing more is sent on that connection.
4. Every command has a timeout; a 520 usage error is read to its last line.
6. ``Application(loop=...)``: created inside the running loop only (``start``).

And what panoramisk never had: peers outside ``allowed_peers`` (the Asterisk servers)
are closed as soon as they are accepted; the header block is read before a call slot
is taken, so ``max_connections`` limits calls in progress and a peer that connects and
says nothing (or a byte a second, or garbage) holds no slot: it only waits out
``header_timeout``. Connections still sending their header are bounded by the file
limit: when there are ``max_pending`` of them, the oldest is closed to make room (a
real Asterisk sends its header at once). Every dropped or refused connection is
logged on ``sac_ivr.connections.agi``, which is logged once with a count in a flood
(:mod:`sac_ivr.logs`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from panoramisk import fast_agi
from panoramisk.utils import parse_agi_result

from sac_ivr.agi.channel_vars import RESULT
from sac_ivr.logs import AGI_CONNECTIONS

log = logging.getLogger(__name__)
conn_log = logging.getLogger(AGI_CONNECTIONS)

# The stream's buffer limit: caps the header block and any reply line.
MAX_HEADER_BYTES = 16 * 1024
# How often a call's watchdog looks for an overdue reply.
WATCHDOG_INTERVAL_S = 0.5
# Asterisk 22 sends 22 agi_* lines plus agi_arg_N; anything near this is not Asterisk.
MAX_HEADER_LINES = 128
# The listening socket's accept queue (the kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 4096
# Connections still sending their header, at most (see FastAgiServer.max_pending).
MAX_PENDING_DEFAULT = 10_000

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AgiError(Exception):
    """The FastAGI conversation cannot go on."""


class AgiHangup(AgiError):
    """The channel hung up (or the connection closed): stop, this is normal."""


class AgiProtocolError(AgiError):
    """The peer sent something that is not FastAGI."""


class AgiCommandError(AgiError):
    """Asterisk refused a command (510/520): a bug on our side, not the caller's."""


@dataclass(frozen=True)
class AgiResult:
    code: int
    result: str
    data: str
    endpos: int | None
    line: str

    @property
    def digit(self) -> str | None:
        """The DTMF key for STREAM FILE / WAIT FOR DIGIT results, else None."""
        try:
            value = int(self.result)
        except ValueError:
            return None
        return chr(value) if value > 0 else None


RouteHandler = Callable[["AgiCall"], Awaitable[None]]


class AgiCall(fast_agi.Request):
    """One FastAGI session: the channel's headers and commands sent to it."""

    def __init__(
        self,
        app: FastAgiServer,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        command_timeout: float,
    ) -> None:
        super().__init__(app=app, headers=headers, reader=reader, writer=writer)
        self.command_timeout = command_timeout
        self.hung_up = False
        self.timed_out = False
        self._reply_deadline: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    # -- channel facts
    @property
    def route(self) -> str:
        return route_name(self.headers.get("agi_network_script", ""))

    @property
    def uniqueid(self) -> str:
        return self.headers.get("agi_uniqueid", "")

    @property
    def args(self) -> list[str]:
        """agi_arg_1, agi_arg_2, ... in order."""
        out = []
        n = 1
        while f"agi_arg_{n}" in self.headers:
            out.append(self.headers[f"agi_arg_{n}"])
            n += 1
        return out

    def header(self, name: str) -> str | None:
        """An agi_* header, None when Asterisk sent "unknown" or nothing."""
        value = self.headers.get(name, "").strip()
        return None if value in ("", "unknown") else value

    # -- commands
    async def send_command(self, command: str) -> dict[str, Any]:  # panoramisk's signature
        result = await self.command(command)
        return parse_agi_result(result.line)

    async def command(self, command: str, timeout: float | None = None) -> AgiResult:
        """Send one AGI command and read its result line.

        Raises AgiHangup when the channel is gone (EOF, in-band HANGUP, result -1 or
        511), AgiCommandError on 510/520.
        """
        if self.hung_up:
            raise AgiHangup("channel already hung up")
        if "\n" in command or "\r" in command:
            raise ValueError("an AGI command is one line")
        try:
            self.writer.write(command.encode(self.encoding) + b"\n")
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self.hung_up = True
            raise AgiHangup(f"connection lost while sending: {exc}") from exc
        loop = asyncio.get_running_loop()
        self._reply_deadline = loop.time() + (timeout or self.command_timeout)
        if self._watchdog is None:
            self._watch()
        try:
            line = await self._read_line()
            while line.startswith("100"):  # "100 result=0 Trying..."
                line = await self._read_line()
            if line == "HANGUP":
                # In-band hangup (AGISIGHUP=yes): the command's own result follows.
                self.hung_up = True
                try:
                    async with asyncio.timeout(1.0):
                        await self._read_line()
                except (TimeoutError, AgiHangup):
                    pass
                raise AgiHangup("caller hung up")
            if line.startswith("520-"):
                usage = [line]
                while not line.startswith("520 "):
                    line = await self._read_line()
                    usage.append(line)
                raise AgiCommandError(f"{command!r}: " + " / ".join(usage))
        finally:
            self._reply_deadline = None
        return self._parse(command, line)

    def _watch(self) -> None:
        """Per-call watchdog for reply timeouts (fix 4).

        One timer per call that re-arms itself, instead of an ``asyncio.timeout``
        per command: a call sends ~25 commands, and the timers were a tenth of the
        CPU a call costs. An overdue reply aborts the connection; the pending read
        then raises TimeoutError.
        """
        if self.writer.is_closing():
            self._watchdog = None
            return
        loop = asyncio.get_running_loop()
        deadline = self._reply_deadline
        if deadline is not None and loop.time() >= deadline:
            self.timed_out = True
            self._watchdog = None
            self.writer.transport.abort()
            return
        interval = min(WATCHDOG_INTERVAL_S, self.command_timeout / 4)
        self._watchdog = loop.call_later(interval, self._watch)

    def stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def _read_line(self) -> str:
        try:
            raw = await self.reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if self.timed_out:
                self.hung_up = True
                raise TimeoutError("Asterisk did not answer the AGI command in time") from exc
            if isinstance(exc, ConnectionError):
                self.hung_up = True
                raise AgiHangup(f"connection lost: {exc}") from exc
            self.hung_up = True
            raise AgiHangup("connection closed by Asterisk") from exc
        except asyncio.LimitOverrunError as exc:
            raise AgiProtocolError("reply line too long") from exc
        return raw.decode(self.encoding, errors="replace").rstrip("\r\n")

    def _parse(self, command: str, line: str) -> AgiResult:
        code_text, _, rest = line.partition(" ")
        if not code_text.isdigit():
            raise AgiProtocolError(f"unexpected reply to {command!r}: {line[:80]!r}")
        code = int(code_text)
        if code == 511:  # "Command Not Permitted on a dead channel"
            self.hung_up = True
            raise AgiHangup("channel is dead")
        if code != 200:
            raise AgiCommandError(f"{command!r} answered {line!r}")
        head, data = rest, ""
        if "(" in rest and rest.endswith(")"):  # "result=1 (the value)"
            head, _, data = rest[:-1].partition("(")
        fields = dict(token.partition("=")[::2] for token in head.split() if "=" in token)
        result = fields.get("result", "")
        if result == "-1":
            self.hung_up = True
            raise AgiHangup(f"{command.split()[0]} failed: channel hung up")
        endpos = fields.get("endpos")
        return AgiResult(
            code=code,
            result=result,
            data=data,
            endpos=int(endpos) if endpos and endpos.isdigit() else None,
            line=line,
        )

    # -- the few commands the routes use
    async def set_variable(self, name: str, value: str) -> None:
        await self.command(f'SET VARIABLE {name} "{_quote(value)}"')

    async def get_variable(self, name: str) -> str | None:
        result = await self.command(f"GET VARIABLE {name}")
        return result.data if result.result == "1" else None

    async def stream_file(self, prompt: str, escape_digits: str = "") -> str | None:
        """Play a prompt; returns the key that interrupted it, or None."""
        result = await self.command(f'STREAM FILE {prompt} "{escape_digits}"')
        return result.digit

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        result = await self.command(
            f"WAIT FOR DIGIT {timeout_ms}", timeout=timeout_ms / 1000 + self.command_timeout
        )
        return result.digit


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def route_name(script: str) -> str:
    """``agi://host/protocol?x=1`` arrives as agi_network_script ``protocol?x=1``."""
    return script.split("?", 1)[0].strip("/")


class FastAgiServer(fast_agi.Application):
    """panoramisk's Application with a hardened connection handler.

    ``max_connections``: calls in progress at once (a slot is taken once the header
    block is in). ``allowed_peers``: CIDRs allowed to connect (None: everyone).
    ``max_pending``: connections still sending their header, at most; past it the
    oldest of them is closed.
    """

    def __init__(
        self,
        *,
        header_timeout: float = 5.0,
        command_timeout: float = 120.0,
        max_connections: int = 1000,
        allowed_peers: Iterable[str] | None = None,
        max_pending: int = MAX_PENDING_DEFAULT,
    ) -> None:
        asyncio.get_running_loop()  # fix 6: never build it outside the loop it serves
        super().__init__()
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.allowed_peers: list[IpNetwork] | None = (
            None
            if allowed_peers is None
            else [ipaddress.ip_network(cidr, strict=False) for cidr in allowed_peers]
        )
        self.max_pending = max_pending
        self._slots = asyncio.Semaphore(max_connections)
        self._server: asyncio.Server | None = None
        self.active_calls = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Connections reading their header, oldest first (dicts keep insertion order).
        self._pending: dict[asyncio.StreamWriter, None] = {}
        self.refused = 0  # not an allowed peer
        self.dropped = 0  # no valid header block

    def add_route(self, path: str, endpoint: RouteHandler) -> None:  # type: ignore[override]
        if not asyncio.iscoroutinefunction(endpoint):
            raise TypeError(f"AGI route {path!r} must be an async function")  # fix 2
        super().add_route(path, endpoint)

    async def start(self, host: str, port: int) -> asyncio.Server:
        self._server = await asyncio.start_server(
            self.handler, host, port, limit=MAX_HEADER_BYTES, backlog=LISTEN_BACKLOG
        )
        return self._server

    async def serve_socket(self, sock: socket.socket) -> asyncio.Server:
        """Serve on a socket that is already bound (and maybe listening)."""
        self._server = await asyncio.start_server(
            self.handler, sock=sock, limit=MAX_HEADER_BYTES, backlog=LISTEN_BACKLOG
        )
        return self._server

    async def wait_idle(self, seconds: float) -> bool:
        """Wait until no call is in progress; False if some still are after ``seconds``."""
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def peer_allowed(self, peer: Any) -> bool:
        if self.allowed_peers is None:
            return True
        if not isinstance(peer, tuple) or not peer:
            return False  # not an IP connection
        try:
            address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket: ::ffff:10.0.0.9
        return any(address in network for network in self.allowed_peers)

    @property
    def pending_headers(self) -> int:
        """Connections accepted and still sending their header block."""
        return len(self._pending)

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else peer
        if not self.peer_allowed(peer):
            self.refused += 1
            conn_log.warning("FastAGI connection from %s refused: not in agi_allowed_peers", host)
            writer.transport.abort()
            return
        if len(self._pending) >= self.max_pending:
            oldest = next(iter(self._pending))
            del self._pending[oldest]
            conn_log.warning(
                "FastAGI: %d connections still sending their header; the oldest is closed",
                self.max_pending,
            )
            oldest.transport.abort()
        self._pending[writer] = None
        try:
            headers = await read_agi_headers(reader, self.header_timeout)
        except AgiError as exc:
            self.dropped += 1
            conn_log.info("FastAGI connection from %s dropped: %s", host, exc)
            await _close(writer)
            return
        finally:
            self._pending.pop(writer, None)
        # The slot limits calls in progress, not connections: taken only now.
        async with self._slots:
            call = AgiCall(self, headers, reader, writer, self.command_timeout)
            self.active_calls += 1
            self._idle.clear()
            try:
                await self._dispatch(call)
            finally:
                call.stop_watchdog()
                self.active_calls -= 1
                if not self.active_calls:
                    self._idle.set()
                await _close(writer)

    async def _dispatch(self, call: AgiCall) -> None:
        route = self._route.get(call.route)
        if route is None:
            log.error("uniqueid=%s: no FastAGI route %r", call.uniqueid, call.route)
            await _report_error(call)
            return
        try:
            await route(call)
        except AgiHangup as exc:
            log.info("uniqueid=%s route=%s: %s", call.uniqueid, call.route, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("uniqueid=%s route=%s failed", call.uniqueid, call.route)
            await _report_error(call)


async def _report_error(call: AgiCall) -> None:
    """Tell the dialplan this route failed; it then takes the caller to the menu."""
    if call.hung_up:
        return
    try:
        await call.set_variable(RESULT, "ERROR")
    except (AgiError, TimeoutError):
        pass


async def read_agi_headers(reader: asyncio.StreamReader, timeout: float) -> dict[str, str]:
    """Read the ``agi_*: value`` block up to its blank line (fix 1).

    The first four bytes must be ``agi_``: anything else (an HTTP probe, TLS, a port
    scan's junk) is refused at once instead of waiting for a blank line that may
    never come. Then one ``readuntil`` for the whole block (the stream's limit caps
    its size), so a call costs one wake-up, not one per line. Raises
    AgiProtocolError on EOF, timeout, an oversized block or a non-AGI line.
    """
    head = b""
    try:
        async with asyncio.timeout(timeout):
            try:
                head = await reader.readexactly(1)
                while head in (b"\n", b"\r"):  # stray blank lines (seen from Asterisk)
                    head = await reader.readexactly(1)
                head += await reader.readexactly(3)
                if head != b"agi_":
                    raise AgiProtocolError(f"not a FastAGI request (starts with {head!r})")
                block = head + await reader.readuntil(b"\n\n")
            except asyncio.IncompleteReadError as exc:
                if not head and not exc.partial:
                    raise AgiProtocolError("peer closed without sending anything") from None
                raise AgiProtocolError("peer closed before the end of the headers") from None
            except asyncio.LimitOverrunError:
                raise AgiProtocolError("header block too large") from None
    except TimeoutError:
        raise AgiProtocolError(f"headers not complete after {timeout:g} s") from None
    except ConnectionError as exc:
        raise AgiProtocolError(f"connection lost during headers: {exc}") from None
    headers: dict[str, str] = {}
    lines = block.decode("utf-8", errors="replace").replace("\r", "").strip("\n").split("\n")
    if len(lines) > MAX_HEADER_LINES:
        raise AgiProtocolError("header block too large")
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_"):
            raise AgiProtocolError(f"not a FastAGI header: {line[:60]!r}")
        headers[key] = value.strip()
    if "agi_network_script" not in headers:
        raise AgiProtocolError("no agi_network_script header (not a FastAGI request)")
    return headers


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except (ConnectionError, TimeoutError, OSError):
        pass
