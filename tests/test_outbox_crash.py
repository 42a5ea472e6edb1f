"""Notices survive kill -9: a real ``sac-ivr`` process is killed between the change and
the send, and while a send is in flight; a restarted process delivers each notice
exactly once to the SMTP server (aiosmtpd) and the SMS provider (idempotency key).

The last test shows the documented at-least-once window: the SMTP server accepted
the message and the process died before recording it; the resend carries the same
Message-ID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import select

from sac_ivr.auth.services import create_token
from sac_ivr.db.engine import create_engine, make_sessionmaker
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.protocols.tables import ProtocolEvent
from tests.fakeasterisk.agi import fake_call
from tests.notify_fakes import (
    Api,
    FakeSmsProvider,
    FakeSmtp,
    notify_settings,
    start_sms_provider,
    start_smtp,
    stop_sms_provider,
    wait_until,
)

LEASE_S = 4


@dataclass
class World:
    db_url: str
    tmp_path: Path
    smtp: FakeSmtp
    sms: FakeSmsProvider
    token: str
    started: list[asyncio.subprocess.Process]
    log_files: list[IO[str]]

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAC_IVR_")}
        values = notify_settings(
            self.smtp,
            self.sms,
            smtp_timeout=3,
            sms_timeout=3,
            outbox_lease_seconds=LEASE_S,
            database_url=self.db_url,
            agi_port=0,
            http_port=0,
            log_level="INFO",
        )
        values.update(extra)
        env.update({f"SAC_IVR_{k.upper()}": str(v) for k, v in values.items()})
        return env

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp_path.glob("proc*.log")))

    async def rows(self) -> list[OutboxMessage]:
        engine = create_engine(self.db_url)
        try:
            async with make_sessionmaker(engine)() as session:
                return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        finally:
            await engine.dispose()

    async def sent_events(self) -> list[ProtocolEvent]:
        engine = create_engine(self.db_url)
        try:
            async with make_sessionmaker(engine)() as session:
                return list(
                    await session.scalars(
                        select(ProtocolEvent).where(ProtocolEvent.kind == "notification_sent")
                    )
                )
        finally:
            await engine.dispose()

    async def all_sent(self) -> bool:
        rows = await self.rows()
        return bool(rows) and all(r.status == "sent" for r in rows)


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    smtp = await start_smtp()
    sms = await start_sms_provider()
    engine = create_engine(db_url)
    token = await create_token(make_sessionmaker(engine), "ana", "agent")
    await engine.dispose()
    w = World(db_url, tmp_path, smtp, sms, token, [], [])
    try:
        yield w
    finally:
        for process in w.started:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for log in w.log_files:
            log.close()
        await stop_sms_provider(sms)
        await smtp.close()


async def start(
    world: World, *args: str, **extra: str
) -> tuple[asyncio.subprocess.Process, int, int]:
    """(process, agi_port, http_port) of ``sac-ivr serve``."""
    log = (world.tmp_path / f"proc{len(world.started)}.log").open("w")
    world.log_files.append(log)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sac_ivr",
        *(args or ("serve", "--no-migrate")),
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        env=world.env(**extra),
    )
    world.started.append(process)
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    if not line.startswith("READY"):
        raise AssertionError(f"did not start: {line!r}\n{world.logs()}")
    ports = dict(part.split("=") for part in line.split()[1:] if "=" in part)
    return process, int(ports.get("agi", 0)), int(ports.get("http", 0))


async def kill9(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    assert await process.wait() == -signal.SIGKILL


async def test_killed_between_the_change_and_the_send(world: World) -> None:
    # A process that makes changes but sends nothing (its worker is off).
    proc, agi_port, http_port = await start(world, outbox_worker="false")
    number = (await fake_call("127.0.0.1", agi_port, callerid="11987654321")).variables[
        "SAC_PROTOCOL"
    ]
    api = Api(http_port, world.token)
    status, _, _ = await api.call(
        "PATCH", f"/api/v1/protocols/{number}", {"customer_email": "maria@exemplo.com.br"}
    )
    assert status == 200
    status, _, _ = await api.call(
        "POST", f"/api/v1/protocols/{number}/transitions", {"to_status": "in_progress"}
    )
    assert status == 200
    await kill9(proc)
    rows = await world.rows()
    assert [(r.kind, r.channel, r.status) for r in rows] == [
        ("opened", "sms", "pending"),
        ("status", "sms", "pending"),
        ("status", "email", "pending"),
    ]
    assert world.sms.requests == [] and world.smtp.handler.messages == []
    # A worker-only process takes over.
    worker, _, _ = await start(world, "outbox", "run")
    await wait_until(world.all_sent, timeout=30, what="all notices sent")
    worker.send_signal(signal.SIGTERM)
    assert await worker.wait() == 0
    assert len(world.sms.accepted) == 2 and len(world.sms.requests) == 2
    assert len(world.smtp.handler.messages) == 1
    assert number in world.smtp.handler.messages[0]["Subject"]
    assert len(await world.sent_events()) == 3


async def test_killed_while_the_sms_provider_holds_the_request(world: World) -> None:
    world.sms.hold = True
    proc, agi_port, _ = await start(world)
    await fake_call("127.0.0.1", agi_port, callerid="11987654321")
    await wait_until(world.sms.request_reached.is_set, timeout=30, what="the SMS request")
    await kill9(proc)  # the provider has the message; the sender never got the answer
    world.sms.hold = False
    world.sms.release.set()
    [row] = await world.rows()
    assert row.status == "sending" and row.attempts == 1
    await start(world)  # restarted: retries once the lease expired, with the same key
    await wait_until(world.all_sent, timeout=30, what="the SMS recorded as sent")
    assert len(world.sms.requests) == 2
    assert {r.headers["Idempotency-Key"] for r in world.sms.requests} == {row.key}
    assert len(world.sms.accepted) == 1  # exactly one SMS
    [row] = await world.rows()
    assert row.attempts == 2 and row.provider_id == "prov-1"
    assert len(await world.sent_events()) == 1


async def test_killed_while_the_smtp_server_holds_the_recipient(world: World) -> None:
    world.smtp.handler.hold_rcpt = True
    proc, agi_port, http_port = await start(world)
    number = (await fake_call("127.0.0.1", agi_port, callerid="1133334444")).variables[
        "SAC_PROTOCOL"
    ]
    api = Api(http_port, world.token)
    await api.call("PATCH", f"/api/v1/protocols/{number}", {"customer_email": "jo@exemplo.com"})
    await api.call("POST", f"/api/v1/protocols/{number}/transitions", {"to_status": "resolved"})
    await wait_until(world.smtp.handler.rcpt_reached.is_set, timeout=30, what="RCPT TO")
    await kill9(proc)
    world.smtp.handler.hold_rcpt = False
    world.smtp.handler.release.set()
    await start(world)
    await wait_until(world.all_sent, timeout=30, what="the e-mail recorded as sent")
    assert len(world.smtp.handler.messages) == 1
    [row] = await world.rows()
    assert world.smtp.handler.messages[0]["Message-ID"] == f"<{row.key}@acme.test>"
    assert row.attempts == 2


async def test_documented_window_smtp_accepted_then_killed_resends_the_same_message_id(
    world: World,
) -> None:
    proc, agi_port, http_port = await start(world)
    number = (await fake_call("127.0.0.1", agi_port, callerid="1133334444")).variables[
        "SAC_PROTOCOL"
    ]
    victim = proc.pid
    killed: list[int] = []

    def kill_before_250(message) -> None:  # the server keeps the message; no 250 reaches us
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    world.smtp.handler.on_data = kill_before_250
    api = Api(http_port, world.token)
    await api.call("PATCH", f"/api/v1/protocols/{number}", {"customer_email": "jo@exemplo.com"})
    await api.call("POST", f"/api/v1/protocols/{number}/transitions", {"to_status": "resolved"})
    await wait_until(lambda: killed, timeout=30, what="the kill")
    assert await proc.wait() == -signal.SIGKILL
    await start(world)
    await wait_until(world.all_sent, timeout=30, what="the e-mail recorded as sent")
    # At-least-once here (SMTP has no idempotency key): two copies, one Message-ID.
    assert len(world.smtp.handler.messages) == 2
    assert len(world.smtp.handler.by_message_id()) == 1
    assert len(await world.sent_events()) == 1
