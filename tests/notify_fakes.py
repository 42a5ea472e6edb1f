"""Fake notification peers for tests: a real SMTP server (aiosmtpd) and an HTTP
server playing the SMS providers (generic webhook with idempotency keys; Zenvia v2).

Both run on the test's event loop, on 127.0.0.1 and an ephemeral port.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from sac_ivr.auth.services import create_token
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.runner import RunningService, start_service
from tests.conftest import make_settings
from tests.fakeasterisk.agi import fake_call


class SmtpHandler:
    """Keeps every message the server accepted (answered 250 to the DATA).

    ``hold_rcpt``: stall at RCPT TO (before any content) until ``release`` is set.
    ``on_data``: called with the message before the 250 is sent (a test may kill the
    sender there: the server has the message, the client never hears the 250).
    """

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.hold_rcpt = False
        self.rcpt_reached = asyncio.Event()
        self.release = asyncio.Event()
        self.on_data: Callable[[EmailMessage], None] | None = None
        self.refuse_rcpt: int | None = None  # e.g. 550: the address does not exist

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if self.refuse_rcpt:
            return f"{self.refuse_rcpt} 5.1.1 no such user"
        if self.hold_rcpt:
            self.rcpt_reached.set()
            await self.release.wait()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        message["X-Test-Rcpt"] = ",".join(envelope.rcpt_tos)
        if self.on_data is not None:
            self.on_data(message)
        self.messages.append(message)
        return "250 2.0.0 accepted"

    def by_message_id(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in self.messages:
            counts[m["Message-ID"]] = counts.get(m["Message-ID"], 0) + 1
        return counts


@dataclass
class FakeSmtp:
    handler: SmtpHandler
    server: asyncio.Server
    port: int

    async def close(self) -> None:
        self.handler.release.set()
        self.server.close()


async def start_smtp() -> FakeSmtp:
    handler = SmtpHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="smtp.test", ident="fake-smtp"), "127.0.0.1", 0
    )
    return FakeSmtp(handler, server, server.sockets[0].getsockname()[1])


@dataclass
class SmsRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeSmsProvider:
    """``accepted``: messages the provider took (one per idempotency key for the
    webhook); ``requests``: every request that reached it."""

    requests: list[SmsRequest] = field(default_factory=list)
    accepted: list[SmsRequest] = field(default_factory=list)
    fail_next: int = 0  # answer 503 to this many requests
    fail_status: int = 503
    hold: bool = False
    request_reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    token: str = "sms-secret"
    _by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms"

    @property
    def zenvia_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/channels/sms/messages"

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        req = SmsRequest(request.path, dict(request.headers), body)
        self.requests.append(req)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "bad token"}, status=401)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"error": "try later"}, status=self.fail_status)
        key = request.headers.get("Idempotency-Key", "")
        if key and key in self._by_key:  # a repeat: the first answer, nothing sent
            return web.json_response(self._by_key[key])
        answer = {"id": f"prov-{len(self.accepted) + 1}"}
        self.accepted.append(req)
        if key:
            self._by_key[key] = answer
        if self.hold:  # took it, but the answer is late (the sender may die meanwhile)
            self.request_reached.set()
            await self.release.wait()
        return web.json_response(answer)

    async def zenvia(self, request: web.Request) -> web.Response:
        body = await request.json()
        req = SmsRequest(request.path, dict(request.headers), body)
        self.requests.append(req)
        if request.headers.get("X-API-TOKEN") != self.token:
            return web.json_response({"code": "AUTHENTICATION_ERROR"}, status=401)
        contents = body.get("contents") or []
        if not body.get("from") or not body.get("to") or not contents:
            return web.json_response({"code": "VALIDATION_ERROR"}, status=400)
        self.accepted.append(req)
        return web.json_response(
            {
                "id": f"zv-{len(self.accepted)}",
                "from": body["from"],
                "to": body["to"],
                "direction": "OUT",
                "channel": "sms",
                "contents": contents,
            }
        )

    def texts(self) -> list[str]:
        out = []
        for r in self.accepted:
            if "contents" in r.body:
                out.append(r.body["contents"][0]["text"])
            else:
                out.append(r.body["text"])
        return out


async def start_sms_provider() -> FakeSmsProvider:
    provider = FakeSmsProvider()
    app = web.Application()
    app.router.add_post("/sms", provider.webhook)
    app.router.add_post("/v2/channels/sms/messages", provider.zenvia)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    provider.runner = runner
    provider.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return provider


async def stop_sms_provider(provider: FakeSmsProvider) -> None:
    provider.release.set()
    if provider.runner is not None:
        await provider.runner.cleanup()


async def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy (not a timing assertion: the
    timeout only bounds a test that would otherwise hang)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


def dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=1, default=str)


class Api:
    """A tiny HTTP client for the service under test."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        raw: bytes | None = None,
        **params: str,
    ) -> tuple[int, Any, str]:
        import aiohttp

        token = token if token is not None else self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as http:
            kwargs: dict[str, Any] = {"headers": headers, "params": params}
            if raw is not None:
                kwargs["data"] = raw
                headers["Content-Type"] = "application/json"
            elif body is not None:
                kwargs["json"] = body
            async with http.request(method, self.base + path, **kwargs) as response:
                text = await response.text()
                parsed = json.loads(text) if response.content_type == "application/json" else None
                return response.status, parsed, text


def notify_settings(smtp: FakeSmtp, sms: FakeSmsProvider, **overrides: Any) -> dict[str, Any]:
    """Settings that send e-mail to the fake SMTP server and SMS to the fake provider."""
    values: dict[str, Any] = {
        "company_name": "ACME",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_from": "SAC ACME <sac@acme.test>",
        "smtp_starttls": False,
        "smtp_timeout": 5,
        "sms_provider": "webhook",
        "sms_url": sms.url,
        "sms_secret": sms.token,
        "sms_sender": "ACME",
        "sms_timeout": 5,
        "outbox_poll_interval": 0.1,
        "outbox_backoff_seconds": 0.05,
        "outbox_lease_seconds": 10,
    }
    values.update(overrides)
    return values


@dataclass
class Env:
    running: RunningService
    smtp: FakeSmtp
    sms: FakeSmsProvider
    api: Api
    token: str

    async def call(self, callerid: str = "11987654321", **kw) -> str:
        result = await fake_call("127.0.0.1", self.running.agi_port, callerid=callerid, **kw)
        return result.variables["SAC_PROTOCOL"]

    async def outbox(self) -> list[OutboxMessage]:
        async with self.running.core.sessionmaker() as session:
            return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))

    async def drained(self) -> bool:
        return all(m.status == "sent" for m in await self.outbox())


@contextlib.asynccontextmanager
async def make_env(db_url: str, **overrides) -> AsyncIterator[Env]:
    smtp = await start_smtp()
    sms = await start_sms_provider()
    settings = make_settings(db_url, **notify_settings(smtp, sms, **overrides))
    running = await start_service(settings, migrate=False)
    token = await create_token(running.core.sessionmaker, "ana", "agent")
    try:
        yield Env(running, smtp, sms, Api(running.http_port, token), token)
    finally:
        await running.stop(drain_seconds=1.0)
        await stop_sms_provider(sms)
        await smtp.close()
