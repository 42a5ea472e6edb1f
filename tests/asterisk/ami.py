"""A small synchronous AMI client for the tests.

Independent of the service's own AMI code (panoramisk) on purpose: the tests use it
to watch what Asterisk really does. A reader thread collects every event; tests wait
for one with :meth:`AmiClient.wait_event`.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

Message = dict[str, str]
Matcher = Mapping[str, str] | Callable[[Message], bool]


class AmiError(RuntimeError):
    pass


def _matches(event: Message, match: Matcher) -> bool:
    if callable(match):
        return bool(match(event))
    return all(event.get(k, "").lower() == str(v).lower() for k, v in match.items())


class AmiClient:
    """One AMI connection: ``action()`` for requests, ``wait_event()`` for events.

    Every event since :meth:`connect` is kept in ``events`` (a test session is short).
    """

    def __init__(
        self, host: str, port: int, username: str, secret: str, *, timeout: float = 10.0
    ) -> None:
        self.host, self.port = host, port
        self.username, self.secret = username, secret
        self.timeout = timeout
        self.events: list[Message] = []
        self.banner = ""
        self._responses: dict[str, Message] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._closed = False

    def connect(self) -> Message:
        """Connect and log in; returns the login response."""
        self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self._sock.settimeout(None)
        f = self._sock.makefile("rb")
        self.banner = f.readline().decode("utf-8", "replace").strip()
        self._reader = threading.Thread(target=self._read_loop, args=(f,), daemon=True)
        self._reader.start()
        resp = self.action("Login", Username=self.username, Secret=self.secret, Events="on")
        if resp.get("Response") != "Success":
            raise AmiError(f"AMI login failed: {resp}")
        return resp

    def close(self) -> None:
        self._closed = True
        if self._sock is not None:
            try:
                self._sock.sendall(b"Action: Logoff\r\n\r\n")
            except OSError:
                pass
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None

    def __enter__(self) -> AmiClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_loop(self, f: Any) -> None:
        msg: Message = {}
        try:
            for raw in f:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line:
                    key, _, value = line.partition(":")
                    if key in msg:  # repeated keys (e.g. ChanVariable): keep them all
                        msg[key] += "\n" + value.strip()
                    else:
                        msg[key] = value.strip()
                    continue
                if msg:
                    self._dispatch(msg)
                msg = {}
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def _dispatch(self, msg: Message) -> None:
        with self._cond:
            if "Event" in msg:
                msg["_received"] = f"{time.monotonic():.6f}"
                self.events.append(msg)
            elif "ActionID" in msg:
                self._responses[msg["ActionID"]] = msg
            self._cond.notify_all()

    def send(self, action: str, **fields: Any) -> str:
        """Send an action without waiting; returns its ActionID."""
        if self._sock is None:
            raise AmiError("not connected")
        action_id = f"t{next(self._ids)}"
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        for key, value in fields.items():
            values = value if isinstance(value, list | tuple) else [value]
            lines.extend(f"{key}: {v}" for v in values)
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return action_id

    def action(self, action: str, *, timeout: float | None = None, **fields: Any) -> Message:
        """Send an action and return its response (the first message with its ActionID)."""
        action_id = self.send(action, **fields)
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while action_id not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise AmiError(f"no response to {action} within {timeout or self.timeout}s")
                self._cond.wait(left)
            return self._responses.pop(action_id)

    def command(self, command: str) -> str:
        """Run a CLI command through AMI (needs the "command" write class)."""
        resp = self.action("Command", Command=command)
        return resp.get("Output", "")

    def find_events(self, match: Matcher, since: int = 0) -> list[Message]:
        with self._cond:
            return [e for e in self.events[since:] if _matches(e, match)]

    def wait_event(self, match: Matcher, *, timeout: float = 30.0, since: int = 0) -> Message:
        """The first event from index ``since`` on that matches (a dict of fields or a
        predicate); waits up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            pos = since
            while True:
                for i in range(pos, len(self.events)):
                    if _matches(self.events[i], match):
                        return self.events[i]
                pos = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no AMI event matching {match!r} within {timeout}s")
                if self._closed:
                    raise AmiError("AMI connection closed while waiting for an event")
                self._cond.wait(left)

    def mark(self) -> int:
        """Index of the next event: pass it as ``since`` to ignore what came before."""
        with self._cond:
            return len(self.events)
