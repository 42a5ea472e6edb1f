"""What the call process tells the web process (``sac-ivr serve`` runs them apart).

The call path hands two things to features that live in the web process:

- the outbox worker's wake-up after a commit that queued notices (the issuer's
  after-commit hook for the opening SMS, the caller's key-2 SMS, a cancellation's
  receipt): ``notifications.services.wake_worker`` calls the ``core.outbox_wakeup``
  hook, which in the call process sends the wake-up over to the web process;
- the panels' live events published by lifecycle code that AGI routes run
  (``core.live.publish``): in the call process ``core.live`` is a
  :class:`ForwardingHub`.

Each becomes one small JSON datagram (``{"type": "wake"}``, ``{"type": "live",
"event": {...}}``) on a Unix datagram socketpair made by the supervisor, which keeps
both ends so that either process can restart without the other noticing. The web
process (:class:`CallEventReceiver`) wakes its outbox worker and publishes the event
on its own :class:`~sac_ivr.live.LiveHub`, where the panels' streams are.

Sending never waits: the socket is non-blocking, wake-ups are coalesced to one per
loop iteration, and a datagram that does not fit (the web process is down or stuck)
is dropped and counted. Both are safe to lose: the worker also scans the outbox every
``outbox_poll_interval`` and at start, and a panel that reconnects reloads its
snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

from sac_ivr.core import Core
from sac_ivr.live import LiveHub

log = logging.getLogger(__name__)

MAX_DATAGRAM = 32 * 1024


def make_channel() -> tuple[socket.socket, socket.socket]:
    """(call end, web end)."""
    call_end, web_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    return call_end, web_end


class CallEventSender:
    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.sent = 0
        self.dropped = 0
        self._wake_pending = False

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":"), default=str).encode()
        if len(data) > MAX_DATAGRAM:
            self.dropped += 1
            log.warning("call event %r not passed on: %d bytes", message.get("type"), len(data))
            return
        try:
            self.sock.send(data)
        except OSError as exc:  # full (BlockingIOError), or the web end is gone
            self.dropped += 1
            log.warning("call event not passed on to the web process: %s", exc)
            return
        self.sent += 1

    def wake_outbox(self) -> None:
        """Coalesced: one datagram for every wake-up asked in this loop iteration."""
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            asyncio.get_running_loop().call_soon(self._send_wake)
        except RuntimeError:  # no loop (a synchronous caller): send now
            self._send_wake()

    def _send_wake(self) -> None:
        self._wake_pending = False
        self.send({"type": "wake"})


class ForwardingHub(LiveHub):
    """The call process's live hub: nobody subscribes here; events go to the web
    process."""

    def __init__(self, sender: CallEventSender) -> None:
        super().__init__()
        self.sender = sender

    def publish(self, event: dict[str, Any]) -> None:
        super().publish(event)
        self.sender.send({"type": "live", "event": event})

    def wake_outbox(self) -> None:
        self.sender.wake_outbox()


def forward_call_events(sock: socket.socket) -> ForwardingHub:
    """Call process: the live hub its core is built with (live events go to the web
    process); its ``wake_outbox`` goes in the core's ``outbox_wakeup`` hook."""
    return ForwardingHub(CallEventSender(sock))


class CallEventReceiver:
    """Web process: hands the call process's messages to this process's features."""

    def __init__(self, core: Core, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.core = core
        self.sock = sock
        self.received = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(256):  # then let the loop serve others; the reader fires again
            try:
                data = self.sock.recv(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("call events channel failed: %s", exc)
                self.close_now()
                return
            self.received += 1
            self.dispatch(data)

    def dispatch(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            kind = message["type"]
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable call event (%d bytes) ignored", len(data))
            return
        if kind == "wake":
            for wakeup in self.core.outbox_wakeup:
                wakeup()
        elif kind == "live" and isinstance(message.get("event"), dict):
            self.core.live.publish(message["event"])
        else:
            log.warning("unknown call event %r ignored", kind)

    def close_now(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None

    async def close(self) -> None:
        self.close_now()
