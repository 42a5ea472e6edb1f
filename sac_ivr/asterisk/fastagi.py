"""A FastAGI server on panoramisk, hardened against panoramisk 1.4's failures.

What is fixed here, and why:

1. Header read: panoramisk loops on ``reader.read()`` until it sees a blank line;
   a peer that closes first makes it spin on ``b''`` for ever and freezes the whole
   event loop (a port scan or a TCP health check is enough). Ours stops on EOF,
   gives the peer ``header_timeout`` seconds for the whole block, refuses blocks
   larger than ``MAX_HEADER_BYTES`` and anything that does not start with ``agi_``.
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
``header_timeout``. The header is read by a plain protocol (:class:`_HeaderPhase`: a
buffer and one timer, no task, no stream), so thousands of such peers cost little;
the stream and the call's task are made once the block is complete. Connections
still sending their header are bounded by the file limit: when there are
``max_pending`` of them, the oldest is closed to make room (a real Asterisk sends its
header at once). Every dropped or refused connection is logged on
``sac_ivr.connections.agi``, which is logged once with a count in a flood
(:mod:`sac_ivr.logs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from panoramisk import fast_agi
from panoramisk.utils import parse_agi_result

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
# Connections asyncio accepts in one go before it serves anything else (its
# create_server backlog); the kernel's queue is then set back to LISTEN_BACKLOG.
ACCEPT_BATCH = 64
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

        One command at a time: never write the next before this one's answer.
        Asterisk reads FastAGI commands through a stdio buffer and then waits on the
        socket, so a second line already in its buffer is not seen until more bytes
        arrive (the call stalls in silence; seen with the real Asterisk 22).

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
        error_variable: str | None = None,
    ) -> None:
        asyncio.get_running_loop()  # fix 6: never build it outside the loop it serves
        super().__init__()
        # The channel variable set to "ERROR" when a route fails (the dialplan's
        # contract, given by its owner: this package does not import agi/).
        self.error_variable = error_variable
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.allowed_peers: list[IpNetwork] | None = (
            None
            if allowed_peers is None
            else [ipaddress.ip_network(cidr, strict=False) for cidr in allowed_peers]
        )
        self.max_pending = max_pending
        self._slots = asyncio.Semaphore(max_connections)
        self._server: Listener | None = None
        self.active_calls = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Connections reading their header, oldest first (dicts keep insertion order).
        self._pending: dict[_HeaderPhase, None] = {}
        self._calls: set[asyncio.Task[None]] = set()
        self._verdicts: dict[str, bool] = {}  # peer address -> allowed
        self.refused = 0  # not an allowed peer
        self.dropped = 0  # no valid header block

    def add_route(self, path: str, endpoint: RouteHandler) -> None:
        if not asyncio.iscoroutinefunction(endpoint):
            raise TypeError(f"AGI route {path!r} must be an async function")  # fix 2
        super().add_route(path, endpoint)

    async def start(self, host: str, port: int) -> Listener:
        family, _, _, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        return await self.serve_socket(sock)

    async def serve_socket(self, sock: socket.socket) -> Listener:
        """Serve on a socket that is already bound (and maybe listening)."""
        self._server = Listener(self, sock)
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
        host = str(peer[0])
        allowed = self._verdicts.get(host)
        if allowed is None:
            allowed = self._check_peer(host)
            if len(self._verdicts) >= 4096:  # a flood from many addresses
                self._verdicts.clear()
            self._verdicts[host] = allowed
        return allowed

    def _check_peer(self, host: str) -> bool:
        assert self.allowed_peers is not None
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket: ::ffff:10.0.0.9
        return any(address in network for network in self.allowed_peers)

    @property
    def pending_headers(self) -> int:
        """Connections accepted and still sending their header block."""
        return len(self._pending)

    def add_pending(self, phase: _HeaderPhase) -> None:
        """A connection waits for the rest of its header block: it takes a place among
        the pending ones, the oldest closed first when they are ``max_pending``."""
        if len(self._pending) >= self.max_pending:
            oldest = next(iter(self._pending))
            conn_log.warning(
                "FastAGI: %d connections still sending their header; the oldest is closed",
                self.max_pending,
            )
            oldest.drop(None, abort=True)
        self._pending[phase] = None

    def remove_pending(self, phase: _HeaderPhase) -> None:
        self._pending.pop(phase, None)

    def start_call(self, headers: dict[str, str], conn: socket.socket, rest: bytes) -> None:
        """The header block is in: the call runs on the connection as a task."""
        task = asyncio.get_running_loop().create_task(self._stream_call(headers, conn, rest))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _stream_call(self, headers: dict[str, str], conn: socket.socket, rest: bytes) -> None:
        """The header is in: the connection becomes an asyncio stream for the call."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_HEADER_BYTES, loop=loop)
        if rest:
            reader.feed_data(rest)  # sent right after the block, before any reply
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn)
        except OSError:
            conn.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self._serve_call(headers, reader, writer)

    async def _serve_call(
        self, headers: dict[str, str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
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
            await _report_error(call, self.error_variable)
            return
        try:
            await route(call)
        except AgiHangup as exc:
            log.info("uniqueid=%s route=%s: %s", call.uniqueid, call.route, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("uniqueid=%s route=%s failed", call.uniqueid, call.route)
            await _report_error(call, self.error_variable)


async def _report_error(call: AgiCall, variable: str | None) -> None:
    """Tell the dialplan this route failed; it then takes the caller to the menu."""
    if call.hung_up or variable is None:
        return
    try:
        await call.set_variable(variable, "ERROR")
    except (AgiError, TimeoutError):
        pass


class Listener:
    """The FastAGI accept loop: a reader on the listening socket.

    Our own instead of ``loop.create_server`` so that a connection costs no asyncio
    transport, protocol or task until its header block is in: a peer outside the
    allow-list is reset as soon as it is accepted, and the header is read by
    :class:`_HeaderPhase` straight from the socket. At most ACCEPT_BATCH connections
    are taken per loop iteration, so a burst of thousands never holds up the calls in
    progress.
    """

    def __init__(self, server: FastAgiServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.sockets = [sock]
        sock.setblocking(False)
        sock.listen(LISTEN_BACKLOG)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._accept)
        self._closed = False

    def _accept(self) -> None:
        server = self.server
        for _ in range(ACCEPT_BATCH):
            try:
                conn, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                # Out of descriptors (EMFILE, ENFILE) or memory: pause, then go on.
                conn_log.warning("FastAGI accept failed (%s); pausing for 1 s", exc)
                self._loop.remove_reader(self.sock.fileno())
                self._loop.call_later(1.0, self._resume)
                return
            host = address[0] if isinstance(address, tuple) and address else address
            if not server.peer_allowed(address):
                server.refused += 1
                conn_log.warning(
                    "FastAGI connection from %s refused: not in agi_allowed_peers", host
                )
                _reset(conn)
                continue
            conn.setblocking(False)
            _HeaderPhase(server, conn, host)

    def _resume(self) -> None:
        if not self._closed:
            self._loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting (connections already accepted go on)."""
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()

    async def wait_closed(self) -> None:
        return None


def _reset(conn: socket.socket) -> None:
    """Close with a reset: no FIN handshake, the descriptor is free at once."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


class _HeaderPhase:
    """One accepted FastAGI connection until its ``agi_*`` block is in (fix 1).

    The raw socket, a buffer and one timer: no transport, no task, no call slot.
    Stray blank lines before the block are skipped (seen from Asterisk); the first
    four bytes must then be ``agi_`` (an HTTP probe, TLS, a port scan's junk is closed
    at once instead of waiting for a blank line that may never come); the block ends
    at its blank line, within ``header_timeout`` and ``MAX_HEADER_BYTES``. Then the
    call starts on an asyncio stream (:meth:`FastAgiServer.start_call`).
    """

    def __init__(self, server: FastAgiServer, conn: socket.socket, host: Any) -> None:
        self.server = server
        self.conn = conn
        self.fd = conn.fileno()
        self.host = host
        self.buffer = bytearray()
        self.started = False  # "agi_" seen
        self.scanned = 0  # bytes of the buffer searched for the blank line
        self.done = False
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None
        self.waiting = False  # registered with the loop (reader, timer) and the server
        # Asterisk sends its block at once: it is usually here already, and the call
        # starts without a reader, a timer or a place among the pending connections.
        self._readable()
        if not self.done:
            self._wait()

    def _wait(self) -> None:
        """The block is not all in yet: wait for it, within the header timeout."""
        self.server.add_pending(self)
        self.timer = self.loop.call_later(self.server.header_timeout, self._timed_out)
        self.loop.add_reader(self.fd, self._readable)
        self.waiting = True

    def _readable(self) -> None:
        if self.done:
            return
        try:
            data = self.conn.recv(MAX_HEADER_BYTES + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.drop(f"connection lost during headers: {exc}", abort=True)
            return
        if not data:
            if self.buffer or self.started:
                self.drop("peer closed before the end of the headers")
            else:
                self.drop("peer closed without sending anything")
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.started:
            skip = len(buf) - len(buf.lstrip(b"\r\n"))
            del buf[:skip]
            if len(buf) < 4:
                return
            if buf[:4] != b"agi_":
                self.drop(f"not a FastAGI request (starts with {bytes(buf[:4])!r})")
                return
            self.started = True
        end = buf.find(b"\n\n", max(0, self.scanned - 1), MAX_HEADER_BYTES)
        if end < 0:
            self.scanned = len(buf)
            if len(buf) >= MAX_HEADER_BYTES:
                self.drop("header block too large")
            return
        try:
            headers = parse_agi_headers(bytes(buf[: end + 2]))
        except AgiProtocolError as exc:
            self.drop(str(exc))
            return
        self._finish()
        self.server.start_call(headers, self.conn, bytes(buf[end + 2 :]))

    def _timed_out(self) -> None:
        self.timer = None
        if not self.done:
            self.drop(f"headers not complete after {self.server.header_timeout:g} s")

    def _finish(self) -> None:
        self.done = True
        if not self.waiting:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.loop.remove_reader(self.fd)
        self.server.remove_pending(self)

    def drop(self, reason: str | None, abort: bool = False) -> None:
        """Close the connection; ``reason`` None: already logged (or nothing to say)."""
        if self.done:
            return
        self._finish()
        self.server.dropped += 1
        if reason:
            conn_log.info("FastAGI connection from %s dropped: %s", self.host, reason)
        if abort:
            _reset(self.conn)
            return
        with contextlib.suppress(OSError):  # what is still unread would turn the FIN into a reset
            for _ in range(8):
                if not self.conn.recv(65536):
                    break
        self.conn.close()


def parse_agi_headers(block: bytes) -> dict[str, str]:
    """The ``agi_*: value`` lines of a header block (up to its blank line).

    Raises AgiProtocolError for a line that is not ``agi_name: value``, too many
    lines, or no ``agi_network_script``.
    """
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
