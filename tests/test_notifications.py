"""The notification outbox: provider formats, retries with backoff, failures on the
timeline, leases, several workers, e-mail over a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import select, update

from sac_ivr.config import Settings
from sac_ivr.core import Core
from sac_ivr.db.base import utcnow
from sac_ivr.notifications import services as outbox
from sac_ivr.notifications import templates
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.notifications.worker import OutboxWorker
from sac_ivr.protocols.issuer import CallInfo
from sac_ivr.protocols.tables import Protocol, ProtocolEvent
from tests.conftest import make_settings
from tests.notify_fakes import (
    FakeSmsProvider,
    FakeSmtp,
    notify_settings,
    start_sms_provider,
    start_smtp,
    stop_sms_provider,
)


@contextlib.asynccontextmanager
async def stack(
    db_url: str, zenvia: bool = False, **overrides
) -> AsyncIterator[tuple[Core, FakeSmtp, FakeSmsProvider]]:
    smtp = await start_smtp()
    sms = await start_sms_provider()
    if zenvia:
        overrides.update(sms_provider="zenvia", sms_url=sms.zenvia_url)
    core = Core.create(make_settings(db_url, **notify_settings(smtp, sms, **overrides)))
    try:
        yield core, smtp, sms
    finally:
        await core.close()
        await stop_sms_provider(sms)
        await smtp.close()


async def rows(core: Core) -> list[OutboxMessage]:
    async with core.sessionmaker() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def events(core: Core, kind: str) -> list[ProtocolEvent]:
    async with core.sessionmaker() as session:
        return list(
            await session.scalars(
                select(ProtocolEvent).where(ProtocolEvent.kind == kind).order_by(ProtocolEvent.id)
            )
        )


async def drain(worker: OutboxWorker, core: Core, rounds: int = 200) -> None:
    """Run the worker until no row is pending or sending (retries included)."""
    for _ in range(rounds):
        await worker.run_once()
        if all(r.status in ("sent", "failed") for r in await rows(core)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("outbox not drained")


async def test_opening_sms_row_is_written_in_the_issuing_transaction(db_url: str) -> None:
    async with stack(db_url) as (core, _, sms):
        mobile = await core.issuer.issue(CallInfo(caller_number="11987654321"))
        landline = await core.issuer.issue(CallInfo(caller_number="1133334444"))
        hidden = await core.issuer.issue(CallInfo(caller_number="anonymous"))
        [row] = await rows(core)
        assert row.kind == "opened" and row.channel == "sms"
        assert row.recipient == "+5511987654321"
        assert mobile.number in row.body and row.status == "pending"
        async with core.sessionmaker() as session:
            due = dict((await session.execute(select(Protocol.number, Protocol.due_at))).all())
        assert all(due[p.number] is not None for p in (mobile, landline, hidden))
        assert sms.requests == []  # nothing is sent until a worker runs


async def test_webhook_sms_carries_the_idempotency_key_and_lands_on_the_timeline(
    db_url: str,
) -> None:
    async with stack(db_url) as (core, _, sms):
        issued = await core.issuer.issue(CallInfo(caller_number="11987654321"))
        worker = OutboxWorker(core)
        assert await worker.run_once() == 1
        [request] = sms.accepted
        [row] = await rows(core)
        assert request.path == "/sms"
        assert request.headers["Idempotency-Key"] == row.key
        assert request.headers["Authorization"] == "Bearer sms-secret"
        assert request.body == {
            "id": row.key,
            "to": "+5511987654321",
            "from": "ACME",
            "text": row.body,
            "reference": issued.number,
        }
        assert row.body.isascii() and "protocolo de atendimento e" in row.body
        assert (row.status, row.attempts, row.provider_id) == ("sent", 1, "prov-1")
        [event] = await events(core, "notification_sent")
        assert event.data["channel"] == "sms" and event.data["to"].endswith("4321")
        assert event.data["message_key"] == row.key
        assert "987654321" not in event.data["to"]
        await worker.close()


async def test_zenvia_request_format(db_url: str) -> None:
    async with stack(db_url, zenvia=True) as (core, _, sms):
        await core.issuer.issue(CallInfo(caller_number="(11) 98765-4321"))
        worker = OutboxWorker(core)
        await worker.run_once()
        [request] = sms.accepted
        assert request.path == "/v2/channels/sms/messages"
        assert request.headers["X-API-TOKEN"] == "sms-secret"
        assert "Idempotency-Key" not in request.headers
        assert request.body["from"] == "ACME"
        assert request.body["to"] == "5511987654321"
        assert request.body["contents"][0]["type"] == "text"
        [row] = await rows(core)
        assert request.body["contents"][0]["text"] == row.body
        assert row.provider_id == "zv-1" and row.status == "sent"
        await worker.close()


async def test_failures_are_retried_with_backoff_and_the_same_key(db_url: str) -> None:
    async with stack(db_url) as (core, _, sms):
        sms.fail_next = 2
        await core.issuer.issue(CallInfo(caller_number="11987654321"))
        worker = OutboxWorker(core)
        before = utcnow()
        await worker.run_once()
        [row] = await rows(core)
        assert row.status == "pending" and row.attempts == 1
        assert "503" in row.last_error
        assert row.next_attempt_at >= before + timedelta(seconds=0.05)
        assert await worker.run_once() == 0 or row.next_attempt_at <= utcnow()
        await drain(worker, core)
        [row] = await rows(core)
        assert (row.status, row.attempts) == ("sent", 3)
        assert len(sms.requests) == 3 and len(sms.accepted) == 1
        assert {r.headers["Idempotency-Key"] for r in sms.requests} == {row.key}
        [event] = await events(core, "notification_sent")
        assert event.data["attempts"] == 3
        await worker.close()


def test_backoff_doubles_up_to_the_cap() -> None:
    settings = Settings.load(
        env={}, overrides={"outbox_backoff_seconds": 30, "outbox_backoff_max_seconds": 100}
    )
    assert [outbox.backoff(n, settings).total_seconds() for n in (1, 2, 3, 4)] == [
        30,
        60,
        100,
        100,
    ]


async def test_after_max_attempts_the_failure_is_on_the_timeline(db_url: str) -> None:
    async with stack(db_url, outbox_max_attempts=3) as (core, _, sms):
        sms.fail_next = 99
        await core.issuer.issue(CallInfo(caller_number="11987654321"))
        worker = OutboxWorker(core)
        await drain(worker, core)
        [row] = await rows(core)
        assert (row.status, row.attempts) == ("failed", 3)
        assert len(sms.requests) == 3
        [event] = await events(core, "notification_failed")
        assert "503" in event.data["error"] and event.data["attempts"] == 3
        assert await worker.run_once() == 0  # a failed row is never taken again
        await worker.close()


async def test_permanent_errors_fail_at_once(db_url: str) -> None:
    async with stack(db_url) as (core, smtp, sms):
        smtp.handler.refuse_rcpt = 550
        sms.fail_next, sms.fail_status = 1, 400
        issued = await core.issuer.issue(CallInfo(caller_number="11987654321"))
        async with core.sessionmaker() as session, session.begin():
            protocol = await session.scalar(
                select(Protocol).where(Protocol.number == issued.number)
            )
            protocol.customer_email = "ninguem@acme.test"
            await outbox.queue_for_protocol(session, core, protocol, "status", sms=False)
        worker = OutboxWorker(core)
        await worker.run_once()
        by_channel = {r.channel: r for r in await rows(core)}
        assert (by_channel["email"].status, by_channel["email"].attempts) == ("failed", 1)
        assert "550" in by_channel["email"].last_error
        assert (by_channel["sms"].status, by_channel["sms"].attempts) == ("failed", 1)
        assert len(await events(core, "notification_failed")) == 2
        await worker.close()


async def test_email_over_smtp_arrives_with_a_stable_message_id(db_url: str) -> None:
    async with stack(db_url) as (core, smtp, _):
        issued = await core.issuer.issue(CallInfo(caller_number="1133334444"))
        async with core.sessionmaker() as session, session.begin():
            protocol = await session.scalar(
                select(Protocol).where(Protocol.number == issued.number)
            )
            protocol.customer_email = "joao@exemplo.com.br"
            protocol.customer_name = "João da Silva"
            protocol.subject = "complaint"
            protocol.status = "in_progress"
            await outbox.queue_for_protocol(
                session, core, protocol, "status", customer_note="Já estamos verificando."
            )
        worker = OutboxWorker(core)
        await worker.run_once()
        [mail] = smtp.handler.messages
        [row] = await rows(core)
        assert mail["Message-ID"] == f"<{row.key}@acme.test>"
        assert mail["To"] == "joao@exemplo.com.br" and mail["X-Test-Rcpt"] == mail["To"]
        assert mail["Subject"] == f"ACME – protocolo {issued.number}: Em andamento"
        assert mail["Auto-Submitted"] == "auto-generated"
        assert mail["X-SAC-Protocol"] == issued.number
        body = mail.get_content().replace("\r\n", "\n")
        assert body.startswith("Olá, João,")
        assert "Assunto: Reclamação" in body and "Situação: Em andamento" in body
        assert "Mensagem do atendimento:\nJá estamos verificando." in body
        assert "Prazo de resposta: até" in body
        assert "O que acontece agora:" in body
        assert row.provider_id == mail["Message-ID"]
        await worker.close()


async def test_an_expired_lease_is_taken_again_with_the_same_key(db_url: str) -> None:
    async with stack(db_url) as (core, _, sms):
        await core.issuer.issue(CallInfo(caller_number="11987654321"))
        # A worker claims the row and dies without a result.
        [claimed] = await outbox.claim(core.sessionmaker, "dead-worker", core.settings)
        assert claimed.status == "sending"
        worker = OutboxWorker(core)
        assert await worker.run_once() == 0  # its lease still runs
        async with core.sessionmaker() as session, session.begin():
            await session.execute(
                update(OutboxMessage).values(lease_until=utcnow() - timedelta(seconds=1))
            )
        assert await worker.run_once() == 1
        [row] = await rows(core)
        assert (row.status, row.attempts, row.claimed_by) == ("sent", 2, worker.worker_id)
        assert sms.accepted[0].headers["Idempotency-Key"] == claimed.key
        await worker.close()


async def test_two_workers_never_send_the_same_notice(db_url: str) -> None:
    async with stack(db_url, outbox_batch_size=5) as (core, _, sms):
        await asyncio.gather(
            *(core.issuer.issue(CallInfo(caller_number=f"119876543{i:02d}")) for i in range(40))
        )
        assert len(await rows(core)) == 40
        # A second process: its own engine on the same database.
        other = Core.create(core.settings)
        try:
            workers = [OutboxWorker(core), OutboxWorker(other)]

            async def run(worker: OutboxWorker) -> int:
                handled = 0
                while True:
                    n = await worker.run_once()
                    if n == 0:
                        return handled
                    handled += n

            handled = await asyncio.gather(*(run(w) for w in workers))
            assert sum(handled) == 40
            assert len(sms.requests) == 40
            assert len({r.headers["Idempotency-Key"] for r in sms.requests}) == 40
            assert {r.status for r in await rows(core)} == {"sent"}
            for w in workers:
                await w.close()
        finally:
            await other.close()


def test_sms_text_fits_and_folds_accents() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    notice = templates.Notice(
        company="Operadora Ação",
        number="2026112200000123",
        opened_at=datetime(2026, 11, 22, 13, 5, tzinfo=ZoneInfo("UTC")),
        status="waiting_customer",
        customer_note="Precisamos de uma cópia da fatura " + "muito longa " * 40,
        tz=ZoneInfo("America/Sao_Paulo"),
    )
    text = templates.sms_text("status", notice)
    assert text.isascii() and len(text) <= templates.SMS_MAX
    assert text.startswith("Operadora Acao: protocolo 2026112200000123 (22/11/2026 as 10h05)")
    assert "Aguardando informacoes do cliente" in text
    assert templates.sms_text("status", notice, ascii_only=False).startswith("Operadora Ação")


def test_outbox_list_command(sqlite_url: str, capsys) -> None:
    from sac_ivr.cli import main

    async def queue() -> str:
        smtp, sms = await start_smtp(), await start_sms_provider()
        settings = make_settings(sqlite_url, **notify_settings(smtp, sms))
        core = Core.create(settings)
        try:
            return (await core.issuer.issue(CallInfo(caller_number="11987654321"))).number
        finally:
            await core.close()
            await stop_sms_provider(sms)
            await smtp.close()

    number = asyncio.run(queue())
    assert main(["outbox", "list", "--database-url", sqlite_url, "--status", "pending"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.split("\t")[1:5] == ["pending", "sms", "opened", number]
    assert "*******4321" in line and "987654321" not in line
    assert main(["outbox", "list", "--database-url", sqlite_url, "--status", "sent"]) == 0
    assert capsys.readouterr().out == ""


class _CountingWaker:
    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1

    async def close(self) -> None:
        pass


async def test_the_worker_is_woken_only_by_a_batch_that_queued_an_opening_sms(
    db_url: str,
) -> None:
    """A wake-up costs the worker a scan of the outbox; batches of numbers come hundreds
    of times a second, most of them from landlines or with no SMS to send."""
    async with stack(db_url) as (core, _smtp, _sms):
        waker = core.extras["outbox"] = _CountingWaker()
        await core.issuer.issue(CallInfo(caller_number="1133334444", uniqueid="l.1"))
        await asyncio.sleep(0)
        assert waker.wakes == 0  # a landline: no opening SMS, nothing to wake for
        await core.issuer.issue(CallInfo(caller_number="11987654321", uniqueid="m.1"))
        await asyncio.sleep(0)
        assert waker.wakes == 1
        assert [r.kind for r in await rows(core)] == ["opened"]


async def test_a_scan_that_finds_nothing_due_does_not_take_the_write_lock(
    sqlite_url: str,
) -> None:
    """On SQLite the claiming transaction holds the one write lock the issuer needs:
    the worker's periodic scans of an outbox with nothing due must not take it."""
    import sqlite3

    core = Core.create(make_settings(sqlite_url))
    holder = sqlite3.connect(sqlite_url.split("///", 1)[1], timeout=0, isolation_level=None)
    try:
        # Another process holds the write lock: a claim that wanted it would wait for
        # it (busy_timeout) and fail.
        holder.execute("BEGIN IMMEDIATE")
        async with asyncio.timeout(2):
            claimed = await outbox.claim(core.sessionmaker, "w", core.settings, reader=core.reader)
        assert claimed == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await core.close()
