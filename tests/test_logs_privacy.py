"""No personal data or secrets in the logs at any level (issue #8 item 12).

An in-process service runs at DEBUG with every logger captured (root, hence
sqlalchemy, aiosqlite, asyncpg, aiohttp, asyncio, panoramisk and ours), through
scenarios that touch each feature: FastAGI calls with a caller ID and name, the AMI
call log, agents' changes (name, e-mail, CPF, phone, notes), notifications sent to a
local SMS provider and to aiosmtpd (one refused with the address quoted back), a
history request, tokens created and used, a panel session, and a batch the database
refuses. Then every datum is searched for in every form it may take.
"""

from __future__ import annotations

import hashlib
import logging
import re

from sqlalchemy import text

from sac_ivr.auth.services import create_token
from tests.fakeasterisk.agi import fake_call
from tests.fakeasterisk.ami import FakeAmi, load_trace
from tests.notify_fakes import make_env, wait_until
from tests.privacy_helpers import Client

CALLER = "11987654321"  # the caller of the AMI traces too
CALLER_NAME = "Maria Aparecida Quintino"
FAILING_CALLER = "11955554444"
FAILING_NAME = "Joana Recusada Falcão"
CUSTOMER_PHONE = "(21) 99876-5432"
CPF = "529.982.247-25"
EMAIL = "maria.quintino@example.com"
NOTE = "Cliente relata cobrança indevida de R$ 87,45 no cartão final 9911"
CUSTOMER_NOTE = "Estornaremos o valor cobrado indevidamente"
REFUSED_NOTE = "nota que o banco recusa"


PEERS_LOGGERS = ("mail.log",)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []
        self.levels: set[str] = set()
        self.names: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(PEERS_LOGGERS):
            return  # the test's own SMTP server (aiosmtpd) logs what it receives
        self.lines.append(self.format(record))  # message, args and any traceback
        self.levels.add(record.levelname)
        self.names.add(record.name.split(".")[0])


def forms_of_phone(raw: str) -> list[str]:
    digits = re.sub(r"\D", "", raw)
    national = digits[-11:]
    return [raw, national, "55" + national, "+55" + national, national[-9:-4] + "-" + national[-4:]]


async def _refuse_first_rcpt_quoting_it(env) -> list[str]:
    """The SMTP server refuses the first recipient once, quoting the address (as
    Postfix does); the retry goes through."""
    handler = env.smtp.handler
    original = handler.handle_RCPT
    refused: list[str] = []

    async def rcpt(server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        if not refused:
            refused.append(address)
            return f"450 4.2.0 <{address}>: Recipient address rejected: greylisted"
        return await original(server, session, envelope, address, options)

    handler.handle_RCPT = rcpt
    return refused


async def _make_writes_fail(running, postgres: bool) -> None:
    """The database refuses the row of FAILING_NAME's call, and a change of a
    protocol's notes to REFUSED_NOTE (constraints on PostgreSQL, whose errors quote
    the whole row; triggers on SQLite)."""
    async with running.core.engine.begin() as conn:
        if postgres:
            for name, check in (
                ("test_refuse_row", f"caller_name IS DISTINCT FROM '{FAILING_NAME}'"),
                ("test_refuse_note", f"notes IS DISTINCT FROM '{REFUSED_NOTE}'"),
            ):
                await conn.execute(
                    text(f"ALTER TABLE protocols ADD CONSTRAINT {name} CHECK ({check})")
                )
        else:
            for name, when in (
                (
                    "test_refuse_row",
                    f"BEFORE INSERT ON protocols WHEN NEW.caller_name = '{FAILING_NAME}'",
                ),
                (
                    "test_refuse_note",
                    f"BEFORE UPDATE ON protocols WHEN NEW.notes = '{REFUSED_NOTE}'",
                ),
            ):
                await conn.execute(
                    text(
                        f"CREATE TRIGGER {name} {when} "
                        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                    )
                )


async def test_no_personal_data_or_secret_reaches_the_logs_at_debug(db_url: str) -> None:
    capture = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)  # what `sac-ivr serve --log-level DEBUG` sets up
    ami = await FakeAmi().start()
    ami.queue_status = load_trace("queuestatus.ami")
    secrets: list[str] = []
    try:
        overrides = {
            "log_level": "DEBUG",
            "ami_enabled": True,
            "ami_port": ami.port,
            "ami_secret": ami.secret,
        }
        async with make_env(db_url, **overrides) as env:
            running = env.running
            secrets.append(env.token)
            await _make_writes_fail(running, postgres="postgresql" in db_url)
            refused = await _refuse_first_rcpt_quoting_it(env)

            # Calls: one issued (opening SMS to the mobile), one the database refuses.
            issued = await fake_call(
                "127.0.0.1", running.agi_port, callerid=CALLER, calleridname=CALLER_NAME
            )
            number = issued.variables["SAC_PROTOCOL"]
            failed = await fake_call(
                "127.0.0.1", running.agi_port, callerid=FAILING_CALLER, calleridname=FAILING_NAME
            )
            assert failed.variables.get("SAC_RESULT") == "ERROR"

            # The AMI call log of the same caller.
            feature = running.core.extras["calls"]
            await wait_until(lambda: feature.syncs >= 1, what="AMI sync")
            await ami.push_trace("queue_answered.ami")
            await feature.client.ping()
            await feature.writer.flush()

            # An agent records the customer, then answers (SMS and e-mail).
            status, _, body = await env.api.call(
                "PATCH",
                f"/api/v1/protocols/{number}",
                {
                    "customer_name": CALLER_NAME,
                    "customer_email": EMAIL,
                    "customer_document": CPF,
                    "customer_phone": CUSTOMER_PHONE,
                    "notes": NOTE,
                },
            )
            assert status == 200, body
            # A change the database refuses: a 500, logged with its traceback.
            status, _, body = await env.api.call(
                "PATCH", f"/api/v1/protocols/{number}", {"notes": REFUSED_NOTE}
            )
            assert status == 500, body
            status, _, body = await env.api.call(
                "POST",
                f"/api/v1/protocols/{number}/transitions",
                {"to_status": "in_progress", "customer_note": CUSTOMER_NOTE},
            )
            assert status == 200, body
            status, _, body = await env.api.call(
                "POST",
                "/api/v1/history-requests",
                {"document": CPF, "delivery": "email", "email": EMAIL},
            )
            assert status == 201, body

            # Reads and searches.
            for path, params in (
                (f"/api/v1/protocols/{number}", {}),
                ("/api/v1/protocols", {"phone": CUSTOMER_PHONE}),
                ("/api/v1/history", {"document": CPF}),
                ("/api/v1/calls", {"phone": CALLER}),
            ):
                status, _, body = await env.api.call("GET", path, **params)
                assert status == 200, (path, body)
            status, _, _ = await env.api.call("GET", f"/api/v1/protocols/{number}", token="")
            assert status == 200

            # Tokens: created by an admin over HTTP, used with a header and a session.
            admin = await create_token(running.core.sessionmaker, "root", "admin")
            secrets.append(admin)
            status, made, _ = await env.api.call(
                "POST", "/api/v1/tokens", {"name": "carla", "role": "agent"}, token=admin
            )
            assert status == 201
            secrets.append(made["token"])
            browser = Client(running.http_port)
            try:
                login = await browser.call("POST", "/api/v1/session", {"token": made["token"]})
                assert login.status == 200
                secrets += [c.value for c in browser.session.cookie_jar]
                assert (await browser.get("/api/v1/session")).status == 200
                assert (await browser.call("DELETE", "/api/v1/session")).status == 204
            finally:
                await browser.close()
            revoke = await env.api.call("DELETE", f"/api/v1/tokens/{made['id']}", token=admin)
            assert revoke[0] == 200

            # Every notice delivered (the refused e-mail on its second attempt).
            await wait_until(env.drained, timeout=30, what="notifications sent")
            assert refused == [EMAIL]
            assert any(EMAIL in m["X-Test-Rcpt"] for m in env.smtp.handler.messages)
            assert len(env.sms.accepted) >= 2
            async with running.core.sessionmaker() as session:
                kept = await session.scalar(
                    text("SELECT count(*) FROM protocols WHERE caller_name = :n").bindparams(
                        n=FAILING_NAME
                    )
                )
            assert kept == 0
    finally:
        await ami.close()
        root.removeHandler(capture)
        root.setLevel(old_level)

    logged = "\n".join(capture.lines)
    # The scenarios did log, at DEBUG too, and through the failure paths.
    assert "DEBUG" in capture.levels and "AMI -> QueueStatus" in logged
    assert "protocol issue failed" in logged  # the refused batch
    assert "attempt 1 failed" in logged  # the refused e-mail
    assert "request PATCH" in logged and "Traceback" in logged  # the refused change
    forbidden = {
        *forms_of_phone(CALLER),
        *forms_of_phone(FAILING_CALLER),
        *forms_of_phone(CUSTOMER_PHONE),
        CALLER_NAME,
        "Aparecida",
        "Quintino",
        FAILING_NAME,
        "Recusada",
        CPF,
        re.sub(r"\D", "", CPF),
        EMAIL,
        EMAIL.split("@")[0],
        NOTE,
        "indevida",
        CUSTOMER_NOTE,
        "Estornaremos",
    }
    for secret in secrets:
        forbidden |= {secret, hashlib.sha256(secret.encode()).hexdigest()}
    leaks = sorted(f for f in forbidden if f in logged)
    where = {f: next(line for line in capture.lines if f in line)[:300] for f in leaks}
    assert not leaks, f"personal data or secrets in the logs: {where}"
