"""Deadlines and connection caps for the HTTP server, which aiohttp does not have.

aiohttp 3.14 has one timer per connection, ``keepalive_timeout``, armed at connect
and after each response and only acted on while the connection waits for a request
(default: an hour). Nothing bounds how long a client may take to send its headers
or its body, and nothing caps connections: in the issue's flood 5,000 slow-header,
2,000 slow-body and 2,000 idle keep-alive connections were all kept open until the
process ran out of file handles. So, in a small subclass of its RequestHandler and
Server (and an AppRunner that builds them):

- **headers** (``http_header_timeout``): from a new connection, or from the first
  byte of the next request on a kept-alive one, the request line and headers must be
  complete in time, or the connection is closed;
- **body** (``http_body_timeout``): once its headers are in, a request's body must
  be complete in time. If the handler is reading it, the read fails with 408 (a JSON
  error through the error middleware) and the connection closes after that answer;
  otherwise the connection is closed;
- **idle keep-alive** (``http_keepalive_timeout``): aiohttp's own timer, armed after
  each response;
- **caps** (``http_max_connections``, ``http_max_connections_per_client``): a
  connection beyond either is aborted as soon as it is accepted, before any byte is
  read. Live event streams (SSE) are connections like any other and count.

Every close for these reasons is logged on ``sac_ivr.connections.http``, and aiohttp's
own per-request error lines go through the same de-duplication (:mod:`sac_ivr.logs`):
a flood gives a line and a count, not a line per connection. A request line or header
that is not HTTP is logged by its kind only (it may carry anything the client sent).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from sac_ivr.config import Settings
from sac_ivr.logs import HTTP_CONNECTIONS

conn_log = logging.getLogger(HTTP_CONNECTIONS)

# Seconds the server waits on shutdown for requests in progress (streams included:
# the panels end theirs at shutdown) before it cancels them.
SHUTDOWN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class HttpLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 15.0
    max_connections: int = 2000
    max_per_client: int = 200

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            header_timeout=settings.http_header_timeout,
            body_timeout=settings.http_body_timeout,
            keepalive_timeout=settings.http_keepalive_timeout,
            max_connections=settings.http_max_connections,
            max_per_client=settings.http_max_connections_per_client,
        )


def _client_of(peer: Any) -> str:
    if isinstance(peer, tuple | list) and peer:
        return str(peer[0])
    return ""  # a Unix socket


class GuardedServer(Server):
    """aiohttp's Server that builds :class:`GuardedRequestHandler` and keeps the
    connection counts."""

    def __init__(self, *args: Any, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.open_total = 0
        self.open_by_client: dict[str, int] = {}
        self.refused = 0
        self.timed_out = 0

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)

    def admit(self, client: str) -> bool:
        limits = self.limits
        if self.open_total >= limits.max_connections:
            self.refused += 1
            conn_log.warning(
                "HTTP connection from %s refused: %d connections open (http_max_connections)",
                client,
                self.open_total,
            )
            return False
        if self.open_by_client.get(client, 0) >= limits.max_per_client:
            self.refused += 1
            conn_log.warning(
                "HTTP connection from %s refused: %d connections open from that address "
                "(http_max_connections_per_client)",
                client,
                self.open_by_client[client],
            )
            return False
        self.open_total += 1
        self.open_by_client[client] = self.open_by_client.get(client, 0) + 1
        return True

    def release(self, client: str) -> None:
        self.open_total -= 1
        left = self.open_by_client.get(client, 1) - 1
        if left > 0:
            self.open_by_client[client] = left
        else:
            self.open_by_client.pop(client, None)


class GuardedRequestHandler(RequestHandler):
    """RequestHandler with header and body deadlines and the connection caps."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._limits = manager.limits
        self._client: str | None = None  # set once admitted
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timers: set[asyncio.TimerHandle] = set()

    # -- connection life
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client = _client_of(transport.get_extra_info("peername"))
        if not self._guard.admit(client):
            transport.abort()  # type: ignore[attr-defined]
            return
        self._client = client
        super().connection_made(transport)
        # The first request's line and headers are due header_timeout after the
        # connect; aiohttp's keep-alive timer takes over after the first response.
        self._stop_keepalive_timer()
        self._arm_header_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._client is None:
            return  # refused at connect: aiohttp never saw it
        self._guard.release(self._client)
        self._client = None
        self._cancel_header_deadline()
        for timer in self._body_timers:
            timer.cancel()
        self._body_timers.clear()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._client is None or self._force_close or self._close:
            return super().data_received(data)
        if data and self._header_timer is None and self._waiting_for_request():
            # The first byte of the next request: the idle wait is over, the
            # headers are now due.
            self._stop_keepalive_timer()
            self._arm_header_deadline()
        before = len(self._messages)
        super().data_received(data)
        if len(self._messages) > before:  # headers complete (or refused with a 400)
            self._cancel_header_deadline()
            for _, payload in list(self._messages)[before:]:
                self._watch_body(payload)

    # -- headers
    def _waiting_for_request(self) -> bool:
        return self._waiter is not None and not self._waiter.done() and not self._messages

    def _stop_keepalive_timer(self) -> None:
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
            self._keepalive_handle = None

    def _arm_header_deadline(self) -> None:
        self._header_timer = self._loop.call_later(
            self._limits.header_timeout, self._header_deadline_passed
        )

    def _cancel_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self.transport is None or self._messages or self._request_in_progress:
            return
        self._guard.timed_out += 1
        conn_log.info(
            "HTTP connection from %s closed: request headers not complete after %g s",
            self._client,
            self._limits.header_timeout,
        )
        self.force_close()

    # -- bodies
    def _watch_body(self, payload: StreamReader) -> None:
        if payload.is_eof():
            return
        timer = self._loop.call_later(
            self._limits.body_timeout, self._body_deadline_passed, payload
        )
        self._body_timers.add(timer)

        def done() -> None:
            timer.cancel()
            self._body_timers.discard(timer)

        payload.on_eof(done)

    def _body_deadline_passed(self, payload: StreamReader) -> None:
        if self.transport is None or payload.is_eof():
            return
        self._guard.timed_out += 1
        conn_log.info(
            "HTTP connection from %s closed: request body not complete after %g s",
            self._client,
            self._limits.body_timeout,
        )
        request = self._current_request
        if self._request_in_progress and request is not None and request.content is payload:
            # The handler may be reading it: its read fails with a 408 (answered as
            # JSON by the error middleware), and the connection closes after that
            # answer without waiting for the rest of the body.
            payload.set_exception(
                web.HTTPRequestTimeout(text="the request body did not arrive in time")
            )
            self._lingering_time = 0.0
            self.close()
        else:
            self.force_close()

    # -- aiohttp's error lines
    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            # Not HTTP, or malformed: the client's fault, answered 400. Its kind only:
            # the message may quote what the client sent.
            conn_log.info("bad HTTP request from %s: %s", self._client, type(exc).__name__)
            return
        super().log_exception(*args, **kw)


class GuardedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose server applies :class:`HttpLimits`."""

    def __init__(self, app: web.Application, limits: HttpLimits, **kwargs: Any) -> None:
        kwargs.setdefault("shutdown_timeout", SHUTDOWN_TIMEOUT_S)
        super().__init__(app, keepalive_timeout=limits.keepalive_timeout, **kwargs)
        self.limits = limits

    async def _make_server(self) -> Server:
        base = await super()._make_server()  # the app's start-up, handler and factory
        return GuardedServer(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            limits=self.limits,
            **base._kwargs,
        )

    @property
    def guard(self) -> GuardedServer:
        server = self.server
        assert isinstance(server, GuardedServer)
        return server
