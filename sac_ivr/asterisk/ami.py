"""Asterisk Manager Interface (AMI) client: one long-lived, self-healing link.

Why this module speaks the AMI line protocol itself instead of using panoramisk's
``Manager`` (the brief allowed either; panoramisk is still used for FastAGI):

* ``Manager`` re-sends every unanswered action after a reconnect
  (``awaiting_actions``): an ``Originate`` could place the same call twice.
* Its reconnect is a fixed ``call_later`` loop wired into ``connection_lost``; a
  capped exponential backoff and a reconciliation step after each login would mean
  overriding ``connect``, ``connection_made``, ``connection_lost``, ``login`` and
  ``ping`` — nearly the whole class.
* An exception inside ``data_received`` (e.g. ``KeyError: 'async'`` from
  ``Action.multi`` on an Originate response, upstream issue #90) kills the
  transport: one odd message drops the link.
* The login future never resolves when the link dies during login, and its
  ``log.exception('Fail to send %r')`` would print the Login action, secret included.

AMI is a small text protocol (``Key: value`` lines, a blank line ends a message), so
owning ~300 lines is cheaper than fighting those. What each panoramisk 1.4 failure
(see the project notes) becomes here, each with a test in
``tests/test_panoramisk_fixes_ami.py``:

4. Every action is bounded by ``asyncio.wait_for(action_timeout)``; an action sent
   while the link is down fails at once with :class:`AmiNotConnected`; actions
   waiting when the link drops fail with it too and are never re-sent.
5. A ``Ping`` every ``ping_interval`` seconds whose answer is awaited: no answer
   within ``action_timeout`` means a half-open link: it is aborted and rebuilt.
6. Nothing binds to an event loop before :meth:`AmiClient.start`, which runs inside
   the running loop (no ``loop=`` argument anywhere).
#90. Actions complete on their ``Response`` (or on the ``...Complete`` event of an
   event list); nothing looks at an ``Async`` key. ``OriginateResponse`` events that
   arrive later reach subscribers like any other event.
#79. Extra blank lines between messages are skipped; lines that are not
   ``Key: value`` are ignored (debug log); a failing subscriber is logged and the
   link stays up.

Reconnects use a capped exponential backoff (``backoff_min`` doubling up to
``backoff_max``, reset after a successful login). After every login the connect
callbacks run in order (the call log's reconciliation, the live state's seeding);
:attr:`AmiClient.link_lost_at` tells them when the previous link was lost.

Events reach subscribers as plain ``dict`` copies with Asterisk's own header names
(``{"Event": "Hangup", "Linkedid": "...", "Cause": "16", ...}``); a header repeated
in one message (e.g. ``ChanVariable``) becomes a list of strings. Subscribers are
plain functions called in order on the reader task: they must not block (queue the
work). Events that carry the ActionID of a pending action (list items such as
``CoreShowChannel``) go to that action's :class:`AmiResponse`, not to subscribers.

The secret is only ever written to the socket: actions are logged by name and
ActionID, never with their fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sac_ivr.config import Settings

log = logging.getLogger(__name__)

BANNER_PREFIX = b"Asterisk Call Manager/"
MAX_LINE_BYTES = 1024 * 1024
SUCCESS_RESPONSES = frozenset({"success", "follows", "goodbye"})

AmiMessage = dict[str, Any]
EventCallback = Callable[[AmiMessage], None]
ConnectCallback = Callable[["AmiClient"], Awaitable[None]]
LinkCallback = Callable[[bool], None]


class AmiError(Exception):
    """Base of every AMI failure raised to callers."""


class AmiNotConnected(AmiError):
    """The link is down (or went down before the answer came): the action was not done."""


class AmiTimeout(AmiError):
    """No answer within ``action_timeout``."""


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


@dataclass
class _Pending:
    action: str
    future: asyncio.Future[AmiResponse]
    response: AmiMessage | None = None
    events: list[AmiMessage] = field(default_factory=list)
    is_list: bool = False

    def feed(self, message: AmiMessage) -> bool:
        """Take one message carrying our ActionID; True when the action is complete."""
        if self.response is None:
            if "Response" not in message:
                self.events.append(message)  # an item that overtook its response
                return False
            self.response = message
            self.is_list = _lower(message.get("EventList")) == "start"
            return not self.is_list
        if _lower(message.get("EventList")) == "complete" or (
            "Response" not in message and _first(message.get("Event", "")).endswith("Complete")
        ):
            return True
        self.events.append(message)
        return False

    def result(self) -> AmiResponse:
        assert self.response is not None
        return AmiResponse(self.response, self.events)


def _first(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def _lower(value: Any) -> str:
    return _first(value).strip().lower()


def _now() -> datetime:
    return datetime.now(UTC)


class AmiClient:
    """A supervised AMI connection; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        action_timeout: float = 5.0,
        ping_interval: float = 10.0,
        connect_timeout: float | None = None,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        events: str = "on",
    ) -> None:
        if action_timeout <= 0 or ping_interval <= 0:
            raise ValueError("action_timeout and ping_interval must be positive")
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.connect_timeout = connect_timeout or action_timeout
        self.backoff_min = max(0.01, min(backoff_min, backoff_max))
        self.backoff_max = max(backoff_max, self.backoff_min)
        self.events = events
        self.version: str | None = None  # from the banner, e.g. "9.0.0"
        self.connected_at: datetime | None = None
        self.link_lost_at: datetime | None = None  # when the previous link went down
        self.last_seen_at: datetime | None = None  # last byte read from Asterisk
        self.connections = 0  # successful logins so far
        self._subscribers: list[EventCallback] = []
        self._connect_callbacks: list[ConnectCallback] = []
        self._link_callbacks: list[LinkCallback] = []
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._id_prefix = f"sac-{secrets.token_hex(3)}"
        self._writer: asyncio.StreamWriter | None = None
        self._connected = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._up: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._abort_reason: str | None = None
        self._session_logged_in = False

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> AmiClient:
        return cls(
            settings.ami_host,
            settings.ami_port,
            settings.ami_username,
            settings.ami_secret,
            action_timeout=settings.ami_action_timeout,
            ping_interval=settings.ami_ping_interval,
            backoff_max=settings.ami_reconnect_max,
            **kwargs,
        )

    def __repr__(self) -> str:  # the secret must not leak through repr either
        state = "connected" if self._connected else "disconnected"
        return f"<AmiClient {self.username}@{self.host}:{self.port} {state}>"

    # ------------------------------------------------------------ registration
    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(event_dict)`` for every event; returns an unsubscribe function."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def add_connect_callback(self, callback: ConnectCallback) -> None:
        """Run ``await callback(client)`` after every successful (re)login, in order."""
        self._connect_callbacks.append(callback)

    def add_link_callback(self, callback: LinkCallback) -> None:
        """Call ``callback(connected)`` whenever the link goes up or down."""
        self._link_callbacks.append(callback)

    # --------------------------------------------------------------- lifecycle
    @property
    def connected(self) -> bool:
        """Logged in and not known to be dead."""
        return self._connected

    async def start(self) -> None:
        """Start connecting in the background (inside the running loop)."""
        if self._task is not None:
            return
        self._closing = False
        self._up = asyncio.Event()
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ami-client")

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """True once logged in (False on timeout)."""
        if self._up is None:
            raise RuntimeError("AmiClient.start() was not called")
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Log off (best effort) and stop reconnecting."""
        if self._closing and self._task is None:
            return
        self._closing = True
        if self._connected:
            with contextlib.suppress(AmiError, OSError):
                await self._send("Logoff", {}, timeout=min(1.0, self.action_timeout))
        if self._wake is not None:
            self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ----------------------------------------------------------------- actions
    async def send_action(
        self,
        action: str,
        fields: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        check: bool = True,
    ) -> AmiResponse:
        """Send one action and wait (at most ``timeout``/``action_timeout``) for its answer.

        Raises :class:`AmiNotConnected` at once when the link is down,
        :class:`AmiTimeout` without an answer in time, and :class:`AmiActionError`
        on ``Response: Error`` when ``check`` is true. A list action (``EventList:
        start``) returns with its items in :attr:`AmiResponse.events`.
        """
        if not self._connected:
            raise AmiNotConnected(
                f"AMI link to {self.host}:{self.port} is down; {action} was not sent"
            )
        response = await self._send(action, fields or {}, timeout=timeout)
        if check and not response.ok:
            raise AmiActionError(action, response.message)
        return response

    async def ping(self) -> None:
        await self.send_action("Ping")

    async def originate(self, fields: Mapping[str, Any]) -> AmiResponse:
        """``Originate`` (``Async: true`` by default): returns once Asterisk queued it.

        The result of the call itself comes later as an ``OriginateResponse`` event
        carrying the returned response's ``ActionID``.
        """
        merged = {"Async": "true", **fields}
        return await self.send_action("Originate", merged)

    async def _send(
        self, action: str, fields: Mapping[str, Any], *, timeout: float | None
    ) -> AmiResponse:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AmiNotConnected(f"AMI link is down; {action} was not sent")
        action_id = f"{self._id_prefix}-{next(self._ids)}"
        payload = _encode(action, action_id, fields)
        future: asyncio.Future[AmiResponse] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = _Pending(action, future)
        limit = self.action_timeout if timeout is None else timeout
        try:
            writer.write(payload)
            log.debug("AMI -> %s (ActionID %s)", action, action_id)
            return await asyncio.wait_for(self._drain_and_wait(writer, future), limit)
        except TimeoutError:
            raise AmiTimeout(f"no answer to AMI {action} within {limit:g}s") from None
        except (ConnectionError, OSError) as exc:
            raise AmiNotConnected(f"AMI link lost while sending {action}: {exc}") from None
        finally:
            self._pending.pop(action_id, None)

    @staticmethod
    async def _drain_and_wait(
        writer: asyncio.StreamWriter, future: asyncio.Future[AmiResponse]
    ) -> AmiResponse:
        await writer.drain()
        return await future

    # ---------------------------------------------------------- the link itself
    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except AmiAuthError as exc:
                log.error("AMI login to %s:%d as %r refused: %s", *self._where(), exc)
            except (AmiError, OSError, ValueError, TimeoutError) as exc:
                if not self._closing:
                    reason = str(exc) or type(exc).__name__
                    log.warning("AMI link to %s:%d as %r: %s", *self._where(), reason)
            except Exception:
                log.exception("AMI link to %s:%d failed unexpectedly", self.host, self.port)
            finally:
                self._teardown()
            if self._closing:
                break
            if self._session_logged_in:
                attempt = 0  # the link worked: start the backoff over
            delay = min(self.backoff_min * (2**attempt), self.backoff_max)
            attempt = min(attempt + 1, 30)
            log.info("AMI: reconnecting to %s:%d in %.2fs", self.host, self.port, delay)
            assert self._wake is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _where(self) -> tuple[str, int, str]:
        return self.host, self.port, self.username

    async def _session(self) -> None:
        """One connection: banner, login, callbacks, then read until it ends."""
        self._session_logged_in = False
        self._abort_reason = None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=MAX_LINE_BYTES),
            self.connect_timeout,
        )
        self._writer = writer
        banner = await asyncio.wait_for(reader.readline(), self.connect_timeout)
        if not banner.startswith(BANNER_PREFIX):
            raise AmiProtocolError(f"not an AMI server (banner {banner[:40]!r})")
        self.version = banner[len(BANNER_PREFIX) :].decode("ascii", "replace").strip()
        reader_task = asyncio.get_running_loop().create_task(
            self._read_loop(reader), name="ami-reader"
        )
        helpers: list[asyncio.Task[None]] = []
        try:
            login = {"Username": self.username, "Secret": self._secret, "Events": self.events}
            try:
                response = await self._send("Login", login, timeout=self.connect_timeout)
            except AmiNotConnected:
                await _reraise_reader_failure(reader_task)
                raise
            if not response.ok:
                raise AmiAuthError(response.message or "authentication failed")
            self._session_logged_in = True
            self._connected = True
            self.connected_at = _now()
            self.connections += 1
            assert self._up is not None
            self._up.set()
            log.info(
                "AMI connected to %s:%d as %r (Asterisk Call Manager %s)",
                *self._where(),
                self.version,
            )
            self._notify_link(True)
            loop = asyncio.get_running_loop()
            helpers.append(loop.create_task(self._ping_loop(), name="ami-ping"))
            helpers.append(loop.create_task(self._run_connect_callbacks(), name="ami-reconcile"))
            await reader_task
        finally:
            for task in (*helpers, reader_task):
                task.cancel()
            for task in (*helpers, reader_task):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        message: AmiMessage = {}
        try:
            while True:
                raw = await reader.readline()
                if not raw or not raw.endswith(b"\n"):
                    raise ConnectionError(self._abort_reason or "connection closed by Asterisk")
                self.last_seen_at = _now()
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line.strip():
                    if message:
                        self._handle(message)
                        message = {}
                    continue  # blank lines between messages (panoramisk PR #79)
                key, sep, value = line.partition(":")
                key = key.strip()
                if not sep or not key or " " in key:
                    log.debug("AMI: ignoring a line that is not 'Key: value' (%d chars)", len(line))
                    continue
                value = value.strip()
                if key in message:
                    previous = message[key]
                    message[key] = (
                        [*previous, value]
                        if isinstance(previous, list)
                        else [
                            previous,
                            value,
                        ]
                    )
                else:
                    message[key] = value
        except BaseException as exc:
            reason: Exception = (
                exc if isinstance(exc, AmiError) else AmiNotConnected(f"AMI link lost: {exc}")
            )
            self._fail_pending(reason)
            raise

    def _handle(self, message: AmiMessage) -> None:
        try:
            action_id = _first(message.get("ActionID")) or None
            pending = self._pending.get(action_id) if action_id else None
            if pending is not None:
                if pending.feed(message):
                    self._pending.pop(action_id, None)  # type: ignore[arg-type]
                    if not pending.future.done():
                        pending.future.set_result(pending.result())
                return
            if "Event" in message:
                self._dispatch(message)
            elif "Response" in message:
                log.debug("AMI: answer to an action no longer awaited (ActionID %s)", action_id)
            else:
                log.debug("AMI: ignoring a message with neither Event nor Response")
        except Exception:
            log.exception("AMI: could not handle a message; link kept")

    def _dispatch(self, event: AmiMessage) -> None:
        for callback in list(self._subscribers):
            try:
                callback(dict(event))
            except Exception:
                log.exception("AMI subscriber %r failed on %s", callback, event.get("Event"))

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await self._send("Ping", {}, timeout=self.action_timeout)
            except AmiTimeout:
                log.warning(
                    "AMI: no answer to Ping within %gs: link to %s:%d presumed dead",
                    self.action_timeout,
                    self.host,
                    self.port,
                )
                self._abort(f"no answer to Ping within {self.action_timeout:g}s")
                return
            except AmiNotConnected:
                return

    async def _run_connect_callbacks(self) -> None:
        for callback in list(self._connect_callbacks):
            try:
                await callback(self)
            except asyncio.CancelledError:
                raise
            except AmiError as exc:
                log.warning("AMI: connect callback %r failed: %s", callback, exc)
            except Exception:
                log.exception("AMI: connect callback %r failed", callback)

    def _abort(self, reason: str) -> None:
        """Drop the link now (abort: a half-open peer would never let close() finish)."""
        self._abort_reason = reason
        writer = self._writer
        if writer is not None:
            writer.transport.abort()

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(
                    exc
                    if isinstance(exc, AmiNotConnected)
                    else AmiNotConnected(f"AMI link lost before the answer to {item.action}")
                )
                item.future.exception()  # mark retrieved: nobody may be waiting any more

    def _teardown(self) -> None:
        was_connected = self._connected
        self._connected = False
        if self._up is not None:
            self._up.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.transport.abort()
        self._fail_pending(AmiNotConnected("AMI link lost before the answer"))
        if was_connected:
            self.link_lost_at = _now()
            self._notify_link(False)

    def _notify_link(self, connected: bool) -> None:
        for callback in list(self._link_callbacks):
            try:
                callback(connected)
            except Exception:
                log.exception("AMI link callback %r failed", callback)


async def _reraise_reader_failure(reader_task: asyncio.Task[None]) -> None:
    """If the reader died (EOF during login), surface its error instead."""
    if reader_task.done() and not reader_task.cancelled():
        exc = reader_task.exception()
        if exc is not None:
            raise exc


def _encode(action: str, action_id: str, fields: Mapping[str, Any]) -> bytes:
    lines = [f"Action: {action}", f"ActionID: {action_id}"]
    for key, value in fields.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            if "\r" in text or "\n" in text or "\r" in key or "\n" in key or ":" in key:
                raise ValueError(f"AMI field {key!r} contains a line break or colon")
            lines.append(f"{key}: {text}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
