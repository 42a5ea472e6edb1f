"""The AMI client facade: :class:`AmiClient`, the one object the rest of sac-ivr uses.

The package is in three parts, each readable on its own:

* :mod:`sac_ivr.asterisk.wire`: the wire format (framing, parsing, action encoding),
  our own; panoramisk is not used for AMI (its failures lived in its framing and its
  Manager, see that module's docstring);
* :mod:`sac_ivr.asterisk.link`: one self-healing connection (connect, login, capped
  backoff, checked ping, timed actions, no re-send after a reconnect);
* this module: subscribers, connect callbacks, link callbacks, and the public
  actions (:meth:`AmiClient.send_action`, :meth:`AmiClient.originate`,
  :meth:`AmiClient.ping`).

Events reach subscribers as plain ``dict`` copies with Asterisk's header names
(``{"Event": "Hangup", "Linkedid": "...", ...}``, values stripped, a repeated header
such as ``ChanVariable`` as a list of strings). Subscribers are plain functions
called in order on the reading side: they must not block (queue the work); one that
fails is logged and the others still get the event. Events that carry the ActionID
of a pending action (list items such as ``CoreShowChannel``) go to that action's
:class:`AmiResponse`, not to subscribers.

Connect callbacks run in order after every login (the call log's reconciliation,
the live state's seeding); :attr:`AmiClient.link_lost_at` tells them when the
previous link was lost. The client is built without a loop and can be started
again in another loop after :meth:`AmiClient.close` (panoramisk #6).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sac_ivr.asterisk.link import (
    AmiActionError,
    AmiAuthError,
    AmiError,
    AmiLink,
    AmiNotConnected,
    AmiProtocolError,
    AmiResponse,
    AmiTimeout,
    LinkSettings,
)
from sac_ivr.asterisk.wire import MAX_MESSAGE_CHARS, AmiMessage

if TYPE_CHECKING:
    from sac_ivr.config import Settings

__all__ = [
    "MAX_MESSAGE_CHARS",
    "AmiActionError",
    "AmiAuthError",
    "AmiClient",
    "AmiError",
    "AmiMessage",
    "AmiNotConnected",
    "AmiProtocolError",
    "AmiResponse",
    "AmiTimeout",
    "ConnectCallback",
    "EventCallback",
    "LinkCallback",
]

log = logging.getLogger(__name__)

EventCallback = Callable[[AmiMessage], None]
ConnectCallback = Callable[["AmiClient"], Awaitable[None]]
LinkCallback = Callable[[bool], None]


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
        self._link: AmiLink | None = None
        self._connected = False
        self._up: asyncio.Event | None = None
        self._callbacks_task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, host: str | None = None, port: int | None = None, **kwargs: Any
    ) -> AmiClient:
        """A client with the AMI settings; ``host``/``port`` name one server of
        several (default: ``ami_host``/``ami_port``)."""
        return cls(
            settings.ami_host if host is None else host,
            settings.ami_port if port is None else port,
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
        if self._link is not None:
            return
        self._up = asyncio.Event()
        settings = LinkSettings(
            host=self.host,
            port=self.port,
            username=self.username,
            secret=self._secret,
            events=self.events,
            action_timeout=self.action_timeout,
            ping_interval=self.ping_interval,
            connect_timeout=self.connect_timeout,
            backoff_min=self.backoff_min,
            backoff_max=self.backoff_max,
        )
        self._link = AmiLink(
            settings,
            on_up=self._on_link_up,
            on_down=self._on_link_down,
            on_event=self._on_event,
            on_bytes=self._on_bytes,
        )
        self._link.connect()

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
        link, self._link = self._link, None
        if link is None:
            return
        await link.close()
        self._on_link_down()
        task, self._callbacks_task = self._callbacks_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
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
        start``) returns with its items in :attr:`AmiResponse.events`. A line break
        in a field is refused with ``ValueError`` before anything is sent.
        """
        link = self._link
        if link is None or not self._connected:
            raise AmiNotConnected(
                f"AMI link to {self.host}:{self.port} is down; {action} was not sent"
            )
        limit = self.action_timeout if timeout is None else timeout
        response = await link.request(action, fields or {}, limit)
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

    # ------------------------------------------------- the link's callbacks
    def _on_bytes(self) -> None:
        self.last_seen_at = _now()

    def _on_link_up(self, version: str | None) -> None:
        self.version = version
        self._connected = True
        self.connected_at = _now()
        self.connections += 1
        assert self._up is not None
        self._up.set()
        log.info(
            "AMI connected to %s:%d as %r (Asterisk Call Manager %s)",
            self.host,
            self.port,
            self.username,
            self.version,
        )
        self._notify_link(True)
        self._callbacks_task = asyncio.get_running_loop().create_task(
            self._run_connect_callbacks(), name="ami-reconcile"
        )

    def _on_link_down(self) -> None:
        was_connected, self._connected = self._connected, False
        if self._up is not None:
            self._up.clear()
        if self._callbacks_task is not None:
            self._callbacks_task.cancel()
        if was_connected:
            self.link_lost_at = _now()
            self._notify_link(False)

    def _on_event(self, event: AmiMessage) -> None:
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
