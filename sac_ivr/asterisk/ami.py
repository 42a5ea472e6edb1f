"""Asterisk Manager Interface (AMI) client on panoramisk: one long-lived, self-healing link.

:class:`AmiClient` is the project's API (subscribers, connect and link callbacks,
timed actions). Underneath, the AMI protocol is panoramisk's:

* ``Manager`` (subclassed as :class:`_Manager`): the connect → ``connection_made`` →
  ``login`` → ``connection_lost`` → ``connect`` cycle, the Login action it sends, the
  pinger timer, ``register_event``/``dispatch`` for events, ``send_action``, ``close``;
* ``AMIProtocol`` (:class:`_Protocol`): splitting the stream into messages,
  matching answers to actions by ActionID (``handle_message``), the pending-action table;
* ``Message.from_line``: parsing a message (a repeated header becomes a list);
* ``actions.Action`` (:class:`_Action`): ActionIDs, the wire format, the answer future
  and its completion (``add_message``).

panoramisk 1.4's failures (see the project notes) are each fixed by one small named
override below, each with a test in ``tests/test_panoramisk_fixes_ami.py``:

4. Actions that wait for ever. :meth:`_Manager.request` bounds every action (and
   :meth:`_Manager.connection_made` the Login) with a deadline; an action asked for while
   the link is down fails at once with :class:`AmiNotConnected`
   (:meth:`_Protocol.send` also refuses a closing transport: stock writes into it and
   the future never resolves).
   *No re-send after a reconnect*: stock ``AMIProtocol.close`` files unanswered actions
   in ``Manager.awaiting_actions`` and ``send_awaiting_actions`` sends them again after
   the next login: an ``Originate`` would place the call twice. :meth:`_Protocol.close`
   fails them with :class:`AmiNotConnected` and forgets them;
   :meth:`_Manager.send_awaiting_actions` sends nothing.
5. A dead link goes unnoticed (stock ``ping`` never looks at the answer).
   :meth:`_Manager.ping` awaits the Pong for ``action_timeout``; without one the link is
   presumed half-open, aborted and rebuilt.
6. ``Manager(loop=...)``. The manager is built in :meth:`AmiClient.start`, inside the
   running loop, and dropped by :meth:`AmiClient.close`: the client can be started
   again in another loop (stock keeps the first loop for ever).
#90. ``KeyError: 'async'``. Stock ``Action.multi`` guesses lists from the answer's
   text: ``... successfully queued`` reads ``self['async']`` (``KeyError`` without an
   Async field, raised out of ``data_received``: asyncio then closes the transport),
   and with ``Async`` the Originate waits for its ``OriginateResponse`` event, which
   never reaches subscribers. :attr:`_Action.multi` and :attr:`_Action.completed`:
   an answer is a list only when Asterisk says ``EventList: start``; the list ends on
   ``EventList: Complete`` (or its ``...Complete`` event).
#79. Extra blank lines, bare-LF line ends. Stock splits messages on CRLF CRLF only
   and decodes each read on its own with ``errors='ignore'``: a bare-LF message is
   glued to the next one, and a UTF-8 character split between two reads is dropped
   ("João" → "Joo"). :meth:`_Protocol.data_received` decodes incrementally, makes every
   line end CRLF, checks the banner (stock sends Login to any peer) and caps an
   unfinished message at ``MAX_MESSAGE_CHARS``, then hands the text to panoramisk's own
   ``data_received``.
Guarded handling. An exception while handling one message (in panoramisk or in a
   subscriber) is logged by :meth:`_Protocol.handle_message` and the link stays up
   (stock lets it out of ``data_received`` and the transport is closed).
Secret. Stock ``send`` logs ``'Fail to send %r' % action`` (every field: the Login's
   secret) when writing fails, e.g. a secret with an undecodable byte from the
   environment; stock ``close`` logs each re-queued action with its fields.
   :meth:`_Protocol.send` and :meth:`_Protocol.close` log actions by name and ActionID only.

What is still ours, and why (panoramisk has no equivalent to reuse):

* Reconnect policy: stock retries after a fixed ``reconnect_timeout``, has no
  deadline on connecting, and a retry already scheduled still fires after ``close()``.
  :meth:`_Manager.connect`, :meth:`_Manager.connection_made`,
  :meth:`_Manager.connection_lost` and :meth:`_Manager.close` add a connect deadline,
  a capped exponential backoff (``backoff_min`` doubling up to ``backoff_max``, reset
  by a successful login) and a real stop.
* :meth:`_Manager.login`: with stock, a Login lost with the link never resolves
  (stock ``close`` drops it silently), ``login`` calls ``future.result()`` in a done
  callback (it would raise on a failed future) and a refusal is not logged. Ours
  gets a resolved future (failed by :meth:`_Protocol.close`, or by the Login
  deadline's abort), logs a refusal (never the secret), drops the link and lets the
  backoff retry.
* The facade: :class:`AmiResponse`, the error classes, connect callbacks (run in
  order after every login: the call log's reconciliation, the live state's seeding;
  :attr:`AmiClient.link_lost_at` tells them when the previous link was lost), link
  callbacks, and events handed to subscribers as plain ``dict`` copies with
  Asterisk's header names (``{"Event": "Hangup", "Linkedid": "...", ...}``, values
  stripped, a repeated header such as ``ChanVariable`` as a list of strings,
  panoramisk's ``content`` slot left out). Subscribers are plain functions called in
  order on the reading side: they must not block (queue the work). Events that carry
  the ActionID of a pending action (list items such as ``CoreShowChannel``) go to that
  action's :class:`AmiResponse`, not to subscribers.

Parsing details kept from panoramisk (``Message.from_line``), harmless for the
events used here: a header needs ``": "`` after its name; an empty header that ends
a message is dropped (the message is ``strip()``-ed first); a header named
``Content`` is overwritten by panoramisk's body slot; a ``Response: Follows`` (the
``Command`` output of Asterisk ≤ 13) keeps its last line as that body.

panoramisk's own debug lines (one per message read, Manager events) go to the
``sac_ivr.asterisk.ami.wire`` logger; they never contain an action we sent.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from panoramisk import Manager, Message
from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol

if TYPE_CHECKING:
    from sac_ivr.config import Settings

log = logging.getLogger(__name__)
wire_log = logging.getLogger(f"{__name__}.wire")

BANNER_PREFIX = "Asterisk Call Manager/"
MAX_BANNER_CHARS = 256
# An unfinished message larger than this drops the link (stock buffers without limit).
MAX_MESSAGE_CHARS = 1024 * 1024
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


def _first(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def _lower(value: Any) -> str:
    return _first(value).strip().lower()


def _now() -> datetime:
    return datetime.now(UTC)


def _plain(message: Message) -> AmiMessage:
    """A panoramisk Message as Asterisk's headers in a plain dict (see the docstring)."""
    headers: AmiMessage = {}
    for key, value in message.items():
        if key == "content":  # panoramisk's slot for a Follows body, not a header
            continue
        if isinstance(value, list):
            headers[key] = [str(item).strip() for item in value]
        else:
            headers[key] = str(value).strip()
    return headers


def _response_of(result: Message | list[Message]) -> AmiResponse:
    if isinstance(result, list):  # a list: Response, items..., the ...Complete event
        return AmiResponse(_plain(result[0]), [_plain(m) for m in result[1:-1]])
    return AmiResponse(_plain(result))


def _fail(future: asyncio.Future[Any], exc: Exception) -> asyncio.Future[Any]:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # retrieved: the caller may be gone already
    return future


def _cancel(handle: asyncio.Handle | asyncio.Task[Any] | None) -> None:
    if handle is not None:
        handle.cancel()


# ---------------------------------------------------------------- panoramisk layer
class _Action(Action):
    """panoramisk's Action; only the rule for "is this answer complete" is ours (#90)."""

    @property
    def multi(self) -> bool:
        """Override: a list only when Asterisk announces one (``EventList: start``).

        Stock also guesses from the text: ``... successfully queued`` reads
        ``self['async']`` (``KeyError``, issue #90) or waits for ``OriginateResponse``;
        ``Added ... to queue`` (QueueAdd) becomes a list that never ends.
        """
        if self.as_list is not None:
            return bool(self.as_list)
        return _lower(self.responses[0].get("EventList")) == "start"

    @property
    def completed(self) -> bool:
        """Override: the Response ends a plain action, the ``Complete`` marker a list.

        Stock also ends a list on any item that carries a ``Response`` header.
        """
        if len(self.responses) == 1:
            return True
        last = self.responses[-1]
        return _lower(last.get("EventList")) == "complete" or (
            "Response" not in last and _first(last.get("Event")).endswith("Complete")
        )


class _Protocol(AMIProtocol):
    """panoramisk's AMIProtocol with safe framing, sending, handling and closing."""

    def __init__(self, manager: _Manager) -> None:
        super().__init__()
        self.owner = manager

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Stock wires these only in Manager.connection_made, a loop turn later: a peer
        # that answers or closes at once must already find them.
        self.factory = self.owner
        self.encoding = "utf-8"
        self.log = wire_log
        self.abort_reason: str | None = None
        self.gone = asyncio.Event()  # set once asyncio reports the socket closed
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._head = ""  # text received before the banner's line end
        self._cr = False  # the last read ended between CR and LF

    def data_received(self, data: bytes) -> None:
        """Override (#79): whole characters and CRLF line ends only, then panoramisk's own."""
        self.owner.client.last_seen_at = _now()
        text = self._decoder.decode(data)
        if self._cr:
            text = "\r" + text
        self._cr = text.endswith("\r")
        if self._cr:
            text = text[:-1]
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        if self.version is None:
            text = self._take_banner(text)
        if text and not self.closed:
            super().data_received(text.encode(self.encoding))
        if self.queue and len(self.queue[0]) > MAX_MESSAGE_CHARS:
            self.abort(f"a message of more than {MAX_MESSAGE_CHARS} characters")

    def _take_banner(self, text: str) -> str:
        """The first line must be Asterisk's banner (stock sends Login to any peer)."""
        self._head += text
        line, sep, rest = self._head.partition("\r\n")
        if not sep:
            if len(self._head) > MAX_BANNER_CHARS:
                self.abort(f"not an AMI server (banner {self._head[:40]!r})")
            return ""
        self._head = ""
        if not line.startswith(BANNER_PREFIX):
            self.abort(f"not an AMI server (banner {line[:40]!r})")
            return ""
        self.version = line[len(BANNER_PREFIX) :].strip()
        self.owner.client.version = self.version
        return rest

    def handle_message(self, message: Message) -> None:
        """Override: a message that cannot be handled is logged and skipped, link kept.

        Stock lets the exception out of ``data_received`` and asyncio closes the
        transport: one odd message (or one failing callback) dropped the link.
        """
        try:
            super().handle_message(message)
        except Exception:
            kind = _first(message.get("Event")) or _first(message.get("Response"))
            log.exception("AMI: could not handle a message (%s); link kept", kind or "?")

    def send(self, data: Mapping[str, Any], as_list: bool | None = None) -> asyncio.Future[Any]:
        """Override: never logs an action's fields, never writes into a closed link.

        Stock logs ``'Fail to send %r' % action`` (the Login's secret included) when
        the write fails, and a write on a closed transport is dropped silently: the
        action's future never resolves (#4).
        """
        action = data if isinstance(data, Action) else _Action(dict(data), as_list=as_list)
        name = _first(action.get("Action")) or "?"
        if self.closed or self.transport.is_closing():
            return _fail(action.future, AmiNotConnected(f"AMI link is down; {name} was not sent"))
        try:
            payload = str(action).encode(self.encoding)
        except UnicodeEncodeError as exc:  # e.g. an undecodable byte in an env secret
            return _fail(action.future, AmiError(f"AMI {name} cannot be encoded: {exc.reason}"))
        self.responses[action.id] = action
        self.transport.write(payload)
        log.debug("AMI -> %s (ActionID %s)", name, action.id)
        return action.future

    def close(self) -> None:
        """Override: unanswered actions fail now with :class:`AmiNotConnected`, forgotten.

        Stock files them (logging each with its fields) for ``send_awaiting_actions``
        to send again after the next login: an Originate would place its call twice.
        """
        pending = {id(action): action for action in self.responses.values()}
        self.responses.clear()
        for action in pending.values():
            name = _first(action.get("Action")) or "?"
            _fail(action.future, AmiNotConnected(f"AMI link lost before the answer to {name}"))
        if not self.closed:
            self.closed = True
            self.transport.close()

    def connection_lost(self, exc: object) -> None:
        """Override: tell our manager why (an abort reason), whatever ``factory`` is."""
        self.gone.set()
        if not self.closed:
            self.close()
            self.owner.connection_lost(AmiNotConnected(self.abort_reason or _why(exc)))

    def abort(self, reason: str) -> None:
        """Drop the link now (abort: a half-open peer would never let close() finish)."""
        if not self.closed and self.abort_reason is None:
            self.abort_reason = reason
            self.transport.abort()


def _why(exc: object) -> str:
    if isinstance(exc, Message):  # stock hands the Shutdown event over as the "exc"
        return "Asterisk is shutting down"
    if isinstance(exc, BaseException):
        return str(exc) or type(exc).__name__
    return "connection closed by Asterisk"


class _Manager(Manager):
    """panoramisk's Manager, one per :meth:`AmiClient.start`; overrides named below."""

    def __init__(self, client: AmiClient) -> None:
        super().__init__(
            host=client.host,
            port=client.port,
            username=client.username,
            secret=client._secret,
            events=client.events,
            encoding="utf-8",
            loop=asyncio.get_running_loop(),  # #6: built inside the running loop
            log=wire_log,
        )
        self.config["protocol_factory"] = functools.partial(_Protocol, self)
        self.client = client
        # Stock int()s these (so mypy reads them as int): a 0.05 s interval would
        # become a ping per loop turn.
        self.ping_delay = self.ping_interval = client.ping_interval  # type: ignore[assignment]
        self.closing = False
        self.attempt = 0  # failed attempts since the last login (the backoff's exponent)
        self.refused = False  # the coming connection_lost follows a logged refusal
        self.connecting: asyncio.Task[Any] | None = None
        self.reconnect_handle: asyncio.TimerHandle | None = None
        self.login_timer: asyncio.TimerHandle | None = None
        self.ping_task: asyncio.Task[None] | None = None
        self.register_event("*", self._on_event)

    # -- the connection cycle (overrides) ------------------------------------------
    def connect(self) -> asyncio.Task[Any] | None:  # type: ignore[override]
        """Override: stock's connect, bounded by ``connect_timeout``; nothing after close()."""
        self.reconnect_handle = None
        if self.closing:
            return None
        task: asyncio.Task[Any] = super().connect()
        timer = self.loop.call_later(self.client.connect_timeout, task.cancel)
        task.add_done_callback(lambda _: timer.cancel())
        self.connecting = task
        return task

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        """Override: a failed attempt goes to the backoff (stock: a fixed delay, and a
        cancelled one raised in the callback); a made one gets stock's wiring and
        Login, plus a deadline for the Login's answer (stock: none)."""
        self.connecting = None
        if f.cancelled() or f.exception() is not None:
            if not self.closing:
                exc = None if f.cancelled() else f.exception()
                if exc is None:
                    self._retry(f"no connection within {self.client.connect_timeout:g}s")
                else:
                    self._retry(str(exc) or type(exc).__name__)
            return
        transport, protocol = f.result()
        if self.closing:
            transport.abort()
            return
        if protocol.closed:
            return  # lost before this callback ran: connection_lost scheduled the retry
        super().connection_made(f)
        timeout = self.client.connect_timeout
        self.login_timer = self.loop.call_later(
            timeout, protocol.abort, f"no answer to Login within {timeout:g}s"
        )

    def login(self, future: asyncio.Future[Any]) -> bool:
        """Override: stock calls ``future.result()`` (raises if the link died during
        login) and logs nothing on a refusal. Ours logs a refusal (never the secret)
        and drops the link; the backoff retries."""
        if future is not self.authenticated_future:
            return False  # the Login of a link already gone
        self.authenticated_future = None
        _cancel(self.login_timer)
        protocol = self.protocol
        assert protocol is not None  # set by connection_made, which sent this Login
        if future.cancelled():
            return False
        if future.exception() is not None:
            protocol.abort(str(future.exception()))  # no-op when the link is gone
            return False
        response = future.result()
        if not response.success:
            reason = _first(response.get("Message")).strip() or "authentication failed"
            log.error("AMI login to %s:%d as %r refused: %s", *self.client._where(), reason)
            if not protocol.closed:
                self.refused = True
                protocol.abort("login refused")
            return False
        self.authenticated = True
        self.attempt = 0
        self.client._link_up()
        _cancel(self.pinger)
        self.pinger = self.loop.call_later(self.ping_delay, self.ping)
        return True

    def ping(self) -> None:
        """Override (#5): the Pong is awaited; none within ``action_timeout`` means a
        half-open link: abort, reconnect. Stock sends Ping and never checks."""
        self.pinger = None
        if self.authenticated and not self.closing:
            self.ping_task = self.loop.create_task(self._checked_ping(), name="ami-ping")

    async def _checked_ping(self) -> None:
        protocol, timeout = self.protocol, self.client.action_timeout
        assert protocol is not None  # pings run only on a logged-in link
        try:
            await self.request("Ping", {}, timeout)
        except AmiTimeout:
            log.warning(
                "AMI: no answer to Ping within %gs: link to %s:%d presumed dead",
                timeout,
                self.client.host,
                self.client.port,
            )
            protocol.abort(f"no answer to Ping within {timeout:g}s")
            return
        except AmiError:
            return  # the link went down: connection_lost handles it
        if protocol is self.protocol and self.authenticated:
            self.pinger = self.loop.call_later(self.ping_interval, self.ping)

    def send_awaiting_actions(self, *_: Any) -> None:  # type: ignore[override]
        """Override: never re-send after a reconnect (see :meth:`_Protocol.close`)."""
        self.awaiting_actions.clear()

    def connection_lost(self, exc: object) -> None:
        """Override: report, then reconnect after a capped exponential backoff (stock:
        a fixed delay, and its retry is not cancelled by close())."""
        self._connected = False
        self.authenticated = False
        for handle in (self.pinger, self.login_timer, self.ping_task):
            _cancel(handle)
        self.pinger = None
        self.client._link_down()
        if self.closing:
            return
        if self.refused:
            self.refused = False  # already logged as a refusal
            self._retry(None)
        else:
            self._retry(str(exc))

    def close(self) -> None:
        """Override: also stop a scheduled reconnect and an attempt under way."""
        self.closing = True
        for handle in (self.reconnect_handle, self.login_timer, self.connecting, self.ping_task):
            _cancel(handle)
        super().close()

    def _retry(self, reason: str | None) -> None:
        if reason is not None:
            log.warning("AMI link to %s:%d as %r: %s", *self.client._where(), reason)
        delay = min(self.client.backoff_min * (2**self.attempt), self.client.backoff_max)
        self.attempt = min(self.attempt + 1, 30)
        log.info("AMI: reconnecting to %s:%d in %.2fs", self.client.host, self.client.port, delay)
        _cancel(self.reconnect_handle)
        self.reconnect_handle = self.loop.call_later(delay, self.connect)

    # -- actions and events ----------------------------------------------------
    async def request(self, name: str, fields: Mapping[str, Any], timeout: float) -> AmiResponse:
        """Send one action through stock ``send_action``; its answer within ``timeout``."""
        protocol = self.protocol
        action = _Action({**fields, "Action": name})
        try:
            result = await asyncio.wait_for(self.send_action(action), timeout)
        except TimeoutError:
            raise AmiTimeout(f"no answer to AMI {name} within {timeout:g}s") from None
        finally:
            if protocol is not None:  # a late answer must not find it (stock kept it)
                protocol.responses.pop(action.id, None)
        return _response_of(result)

    def _on_event(self, manager: Manager, message: Message) -> None:
        self.client._dispatch(message)


# ------------------------------------------------------------------------ facade
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
        self._manager: _Manager | None = None
        self._connected = False
        self._up: asyncio.Event | None = None
        self._callbacks_task: asyncio.Task[None] | None = None

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
        if self._manager is not None:
            return
        self._up = asyncio.Event()
        self._manager = _Manager(self)
        self._manager.connect()

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
        manager, self._manager = self._manager, None
        if manager is None:
            return
        manager.closing = True
        if self._connected:
            with contextlib.suppress(AmiError, OSError):
                await manager.request("Logoff", {}, min(1.0, self.action_timeout))
        protocol = manager.protocol
        manager.close()
        self._link_down()
        if protocol is not None:  # let the socket really close before returning
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(protocol.gone.wait(), 1.0)
        for task in (manager.ping_task, self._callbacks_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._callbacks_task = None

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
        manager = self._manager
        if manager is None or not self._connected:
            raise AmiNotConnected(
                f"AMI link to {self.host}:{self.port} is down; {action} was not sent"
            )
        limit = self.action_timeout if timeout is None else timeout
        response = await manager.request(action, _fields(action, fields or {}), limit)
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

    # ------------------------------------------------- called by the manager
    def _where(self) -> tuple[str, int, str]:
        return self.host, self.port, self.username

    def _link_up(self) -> None:
        self._connected = True
        self.connected_at = _now()
        self.connections += 1
        assert self._up is not None
        self._up.set()
        log.info(
            "AMI connected to %s:%d as %r (Asterisk Call Manager %s)", *self._where(), self.version
        )
        self._notify_link(True)
        self._callbacks_task = asyncio.get_running_loop().create_task(
            self._run_connect_callbacks(), name="ami-reconcile"
        )

    def _link_down(self) -> None:
        was_connected, self._connected = self._connected, False
        if self._up is not None:
            self._up.clear()
        if self._callbacks_task is not None:
            self._callbacks_task.cancel()
        if was_connected:
            self.link_lost_at = _now()
            self._notify_link(False)

    def _dispatch(self, message: Message) -> None:
        event = _plain(message)
        for callback in list(self._subscribers):
            try:
                callback(dict(event))
            except Exception:
                log.exception("AMI subscriber %r failed on %s", callback, event.get("Event"))

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

    def _notify_link(self, connected: bool) -> None:
        for callback in list(self._link_callbacks):
            try:
                callback(connected)
            except Exception:
                log.exception("AMI link callback %r failed", callback)


def _fields(action: str, fields: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """The fields as text (booleans as true/false, sequences as repeated headers).

    A line break (or a colon in a name) would let a value inject headers or a whole
    action: refused with ``ValueError`` before anything is sent.
    """
    checked: dict[str, str | list[str]] = {}
    for name in (action, *fields):
        if "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"AMI field {name!r} contains a line break or colon")
    for key, value in fields.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        texts = [
            ("true" if item else "false") if isinstance(item, bool) else str(item) for item in items
        ]
        for text in texts:
            if "\r" in text or "\n" in text:
                raise ValueError(f"AMI field {key!r} contains a line break or colon")
        checked[key] = texts if isinstance(value, (list, tuple)) else texts[0]
    return checked
