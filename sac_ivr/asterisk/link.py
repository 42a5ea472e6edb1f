"""One self-healing AMI connection: connect, login, checked ping, capped backoff.

:class:`AmiLink` is our own asyncio protocol over :mod:`sac_ivr.asterisk.wire` (it
replaces panoramisk's Manager and AMIProtocol, which needed about twelve overrides
to stop failing). What it guarantees, each with a test in
``tests/test_panoramisk_fixes_ami.py``:

* **Timed actions** (panoramisk #4): :meth:`AmiLink.request` waits at most its
  ``timeout``; the Login has a deadline of ``connect_timeout``; an action asked for
  while no connection is open fails at once with :class:`AmiNotConnected`.
* **No re-send after a reconnect**: actions unanswered when a connection is lost
  fail with :class:`AmiNotConnected` and are forgotten (panoramisk re-sent them
  after the next login: an ``Originate`` placed its call twice).
* **Checked ping** (panoramisk #5): every ``ping_interval`` a Ping must be answered
  within ``action_timeout``; otherwise the link is presumed half-open, aborted and
  rebuilt.
* **Reconnect**: each attempt has a ``connect_timeout``; failures retry after a
  capped exponential backoff (``backoff_min`` doubling up to ``backoff_max``, reset
  by a successful login); :meth:`AmiLink.close` stops a retry already scheduled.
* **Event lists** (panoramisk #90): an answer is a list only when Asterisk says
  ``EventList: start``; the list ends on ``EventList: Complete`` (or a
  ``...Complete`` event). ``Originate`` with ``Async`` is a plain answer; its
  ``OriginateResponse`` is an event like any other.
* **Guarded handling**: a message that cannot be handled is logged and skipped;
  the connection stays up.
* **Secrets**: actions are logged by name and ActionID only, never their fields.

The link knows nothing of subscribers: it hands every event, and every change of
state, to the callbacks it is built with (the facade, :class:`~sac_ivr.asterisk.ami.AmiClient`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sac_ivr.asterisk.wire import (
    ActionIds,
    AmiMessage,
    FrameReader,
    WireError,
    encode_action,
    first,
)

log = logging.getLogger(__name__)

SUCCESS_RESPONSES = frozenset({"success", "follows", "goodbye"})


class AmiError(Exception):
    """Base of every AMI failure raised to callers."""


class AmiNotConnected(AmiError):
    """The link is down (or went down before the answer came): the action was not done."""


class AmiTimeout(AmiError):
    """No answer within the action's deadline."""


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error`` (the message says why)."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"AMI {action} refused: {message or 'no reason given'}")
        self.action = action
        self.reason = message


class AmiAuthError(AmiError):
    """Login refused: wrong user or secret, or the user may not connect from here."""


class AmiProtocolError(AmiError):
    """The peer does not speak AMI."""


@dataclass
class AmiResponse:
    """An action's answer: the ``Response`` headers, plus the items of an event list."""

    headers: AmiMessage
    events: list[AmiMessage] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return str(self.headers.get("Response", "")).lower() in SUCCESS_RESPONSES

    @property
    def message(self) -> str:
        return str(self.headers.get("Message", ""))

    def get(self, key: str, default: Any = None) -> Any:
        return self.headers.get(key, default)


def _lower(value: Any) -> str:
    return first(value).strip().lower()


def _cancel(handle: asyncio.Handle | asyncio.Task[Any] | None) -> None:
    if handle is not None:
        handle.cancel()


def _fail(future: asyncio.Future[Any], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # retrieved: the caller may be gone already


class _PendingAction:
    """An action sent and not yet fully answered."""

    def __init__(self, name: str, future: asyncio.Future[AmiResponse]) -> None:
        self.name = name
        self.future = future
        self.messages: list[AmiMessage] = []

    def add(self, message: AmiMessage) -> bool:
        """Take one message carrying our ActionID; True once the answer is complete."""
        self.messages.append(message)
        if len(self.messages) == 1:
            if _lower(message.get("EventList")) == "start":
                return False  # a list: its items and its end marker follow
            self._resolve(AmiResponse(message))
            return True
        complete = _lower(message.get("EventList")) == "complete" or (
            "Response" not in message and first(message.get("Event")).endswith("Complete")
        )
        if complete:
            self._resolve(AmiResponse(self.messages[0], self.messages[1:-1]))
        return complete

    def _resolve(self, response: AmiResponse) -> None:
        if not self.future.done():
            self.future.set_result(response)


class _Connection(asyncio.Protocol):
    """One TCP connection: framing, the pending actions, and how it ended."""

    def __init__(self, link: AmiLink, action_ids: ActionIds) -> None:
        self._link = link
        self._action_ids = action_ids
        self._reader = FrameReader()
        self._pending: dict[str, _PendingAction] = {}
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.abort_reason: str | None = None
        self.gone = asyncio.Event()  # set once asyncio reports the socket closed

    @property
    def version(self) -> str | None:
        return self._reader.version

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._link.attach(self)

    def data_received(self, data: bytes) -> None:
        self._link.bytes_received()
        try:
            messages = self._reader.feed(data)
        except WireError as exc:
            self.abort(str(exc))
            return
        for message in messages:
            if self.closed:
                return
            self._handle(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone.set()
        self._forget_pending()
        if not self.closed:
            self.closed = True
        reason = self.abort_reason or (str(exc) or type(exc).__name__ if exc else None)
        self._link.detach(self, reason or "connection closed by Asterisk")

    # -- messages
    def _handle(self, message: AmiMessage) -> None:
        try:
            action_id = first(message.get("ActionID"))
            pending = self._pending.get(action_id) if action_id else None
            if pending is not None:
                if pending.add(message):
                    del self._pending[action_id]
                return
            event = message.get("Event")
            if event is None:
                return  # an answer nobody waits for any more (timed out)
            if not isinstance(event, str):
                raise ValueError("repeated Event header")
            self._link.event_received(message)
            if event.lower() == "shutdown":
                self.abort("Asterisk is shutting down")
        except Exception:
            kind = first(message.get("Event")) or first(message.get("Response"))
            log.exception("AMI: could not handle a message (%s); link kept", kind or "?")

    # -- actions
    def send(self, name: str, fields: Mapping[str, Any]) -> tuple[str, asyncio.Future[AmiResponse]]:
        """Write one action; its ActionID and the future of its answer.

        Raises ``ValueError`` (a line break in a field) before anything is written.
        """
        action_id = self._action_ids()
        future: asyncio.Future[AmiResponse] = asyncio.get_running_loop().create_future()
        if self.closed or self.transport is None or self.transport.is_closing():
            _fail(future, AmiNotConnected(f"AMI link is closing; {name} was not sent"))
            return action_id, future
        try:
            payload = encode_action(name, action_id, fields)
        except UnicodeEncodeError as exc:  # e.g. an undecodable byte in an env secret
            _fail(future, AmiError(f"AMI {name} cannot be encoded: {exc.reason}"))
            return action_id, future
        self._pending[action_id] = _PendingAction(name, future)
        self.transport.write(payload)
        log.debug("AMI -> %s (ActionID %s)", name, action_id)
        return action_id, future

    def forget(self, action_id: str) -> None:
        """A late answer to this action must find nothing (it timed out)."""
        self._pending.pop(action_id, None)

    def _forget_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for action in pending.values():
            _fail(
                action.future, AmiNotConnected(f"AMI link lost before the answer to {action.name}")
            )

    def close(self) -> None:
        """Close now; unanswered actions fail with :class:`AmiNotConnected`."""
        self._forget_pending()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self, reason: str) -> None:
        """Drop the connection now (a half-open peer would never let close() finish)."""
        if not self.closed and self.abort_reason is None and self.transport is not None:
            self.abort_reason = reason
            self.transport.abort()


UpCallback = Callable[[str | None], None]
DownCallback = Callable[[], None]
EventCallback = Callable[[AmiMessage], None]
BytesCallback = Callable[[], None]


@dataclass(frozen=True)
class LinkSettings:
    """Where and how to connect; validated by the facade."""

    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    events: str = "on"
    action_timeout: float = 5.0
    ping_interval: float = 10.0
    connect_timeout: float = 5.0
    backoff_min: float = 0.5
    backoff_max: float = 30.0


class AmiLink:
    """Keeps one AMI connection logged in until :meth:`close` (see the module docstring).

    Built inside the running loop (one per start of the facade): callbacks run on it.
    ``on_up(version)`` after every successful login, ``on_down()`` when a logged-in
    connection is lost or closed, ``on_event(message)`` for every event that is not
    part of an action's answer, ``on_bytes()`` whenever bytes are read.
    """

    def __init__(
        self,
        settings: LinkSettings,
        *,
        on_up: UpCallback,
        on_down: DownCallback,
        on_event: EventCallback,
        on_bytes: BytesCallback,
    ) -> None:
        self.settings = settings
        self._on_up = on_up
        self._on_down = on_down
        self._on_event = on_event
        self._on_bytes = on_bytes
        self._loop = asyncio.get_running_loop()
        self._action_ids = ActionIds()
        self._connection: _Connection | None = None
        self._authenticated = False
        self._closing = False
        self._attempt = 0  # failed attempts since the last login (the backoff's exponent)
        self._refused = False  # the coming loss follows a logged refusal
        self._connecting: asyncio.Task[Any] | None = None
        self._reconnect_handle: asyncio.TimerHandle | None = None
        self._login_timer: asyncio.TimerHandle | None = None
        self._pinger: asyncio.TimerHandle | None = None
        self._ping_task: asyncio.Task[None] | None = None

    @property
    def logged_in(self) -> bool:
        return self._authenticated

    # -- called by the connection
    def attach(self, connection: _Connection) -> None:
        """A new TCP connection is open (before its Login is sent)."""
        if self._closing:
            connection.abort("client closed")
            return
        if self._connection is not None:
            self._connection.abort("replaced by a new connection")
        self._connection = connection

    def detach(self, connection: _Connection, reason: str) -> None:
        """The connection is gone: report, then reconnect after the backoff."""
        if connection is not self._connection:
            return  # an older connection, already replaced or closed
        self._connection = None
        self._authenticated = False
        for handle in (self._pinger, self._login_timer, self._ping_task):
            _cancel(handle)
        self._pinger = None
        self._on_down()
        if self._closing:
            return
        if self._refused:
            self._refused = False  # already logged as a refusal
            self._retry(None)
        else:
            self._retry(reason)

    def bytes_received(self) -> None:
        self._on_bytes()

    def event_received(self, message: AmiMessage) -> None:
        self._on_event(message)

    # -- the connection cycle
    def connect(self) -> None:
        """Open a connection in the background (bounded by ``connect_timeout``)."""
        self._reconnect_handle = None
        if self._closing:
            return
        s = self.settings
        task = self._loop.create_task(
            self._loop.create_connection(
                lambda: _Connection(self, self._action_ids), s.host, s.port
            ),
            name="ami-connect",
        )
        timer = self._loop.call_later(s.connect_timeout, task.cancel)

        def done(finished: asyncio.Task[Any]) -> None:
            timer.cancel()
            self._connected(finished)

        task.add_done_callback(done)
        self._connecting = task

    def _connected(self, task: asyncio.Task[Any]) -> None:
        self._connecting = None
        timeout = self.settings.connect_timeout
        if task.cancelled() or task.exception() is not None:
            if not self._closing:
                exc = None if task.cancelled() else task.exception()
                if exc is None:
                    self._retry(f"no connection within {timeout:g}s")
                else:
                    self._retry(str(exc) or type(exc).__name__)
            return
        connection: _Connection = task.result()[1]
        if connection is not self._connection or connection.closed:
            return  # lost (or refused by attach) already: detach scheduled the retry
        s = self.settings
        _action_id, future = connection.send(
            "Login", {"Username": s.username, "Secret": s.secret, "Events": s.events}
        )
        future.add_done_callback(lambda done: self._logged_in(connection, done))
        self._login_timer = self._loop.call_later(
            timeout, connection.abort, f"no answer to Login within {timeout:g}s"
        )

    def _logged_in(self, connection: _Connection, future: asyncio.Future[AmiResponse]) -> None:
        """The Login's answer: up, or a logged refusal (never the secret) and a retry."""
        if connection is not self._connection:
            return  # the Login of a connection already gone
        _cancel(self._login_timer)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            connection.abort(str(exc))  # no-op when the connection is gone
            return
        response = future.result()
        if not response.ok:
            reason = response.message.strip() or "authentication failed"
            s = self.settings
            log.error("AMI login to %s:%d as %r refused: %s", s.host, s.port, s.username, reason)
            if not connection.closed:
                self._refused = True
                connection.abort("login refused")
            return
        self._authenticated = True
        self._attempt = 0
        self._on_up(connection.version)
        self._schedule_ping()

    def _retry(self, reason: str | None) -> None:
        s = self.settings
        if reason is not None:
            log.warning("AMI link to %s:%d as %r: %s", s.host, s.port, s.username, reason)
        delay = min(s.backoff_min * (2**self._attempt), s.backoff_max)
        self._attempt = min(self._attempt + 1, 30)
        log.info("AMI: reconnecting to %s:%d in %.2fs", s.host, s.port, delay)
        _cancel(self._reconnect_handle)
        self._reconnect_handle = self._loop.call_later(delay, self.connect)

    # -- the checked ping
    def _schedule_ping(self) -> None:
        _cancel(self._pinger)
        self._pinger = self._loop.call_later(self.settings.ping_interval, self._ping)

    def _ping(self) -> None:
        self._pinger = None
        if self._authenticated and not self._closing:
            self._ping_task = self._loop.create_task(self._checked_ping(), name="ami-ping")

    async def _checked_ping(self) -> None:
        connection, timeout = self._connection, self.settings.action_timeout
        try:
            await self.request("Ping", {}, timeout)
        except AmiTimeout:
            s = self.settings
            log.warning(
                "AMI: no answer to Ping within %gs: link to %s:%d presumed dead",
                timeout,
                s.host,
                s.port,
            )
            if connection is not None:
                connection.abort(f"no answer to Ping within {timeout:g}s")
            return
        except AmiError:
            return  # the connection went down: detach handles it
        if connection is self._connection and self._authenticated:
            self._schedule_ping()

    # -- actions
    async def request(self, name: str, fields: Mapping[str, Any], timeout: float) -> AmiResponse:
        """Send one action on the open connection; its answer within ``timeout``."""
        connection = self._connection
        if connection is None or connection.closed:
            s = self.settings
            raise AmiNotConnected(f"AMI link to {s.host}:{s.port} is down; {name} was not sent")
        action_id, future = connection.send(name, fields)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise AmiTimeout(f"no answer to AMI {name} within {timeout:g}s") from None
        finally:
            connection.forget(action_id)

    async def close(self) -> None:
        """Log off (best effort), close, stop reconnecting; returns once the socket closed."""
        self._closing = True
        connection = self._connection
        if self._authenticated:
            with contextlib.suppress(AmiError, OSError):
                await self.request("Logoff", {}, min(1.0, self.settings.action_timeout))
        for handle in (
            self._reconnect_handle,
            self._login_timer,
            self._connecting,
            self._pinger,
            self._ping_task,
        ):
            _cancel(handle)
        self._connection = None
        self._authenticated = False
        if connection is not None:
            connection.close()
            self._on_down()
            with contextlib.suppress(TimeoutError):  # let the socket really close
                await asyncio.wait_for(connection.gone.wait(), 1.0)
        if self._ping_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ping_task
