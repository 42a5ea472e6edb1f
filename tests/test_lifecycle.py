"""The lifecycle write API: statuses move through the API, each step notified by
exactly one SMS and one e-mail; field changes; validation; deadlines and filters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from sac_ivr.db.base import utcnow
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.protocols.tables import Protocol, ProtocolEvent
from tests.fakeasterisk.agi import FakeCallScript, fake_call
from tests.notify_fakes import (
    Env,
    make_env,
    wait_until,
)


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    async with make_env(db_url) as e:
        yield e


STEPS = [
    ("forwarded", {"department": "billing"}, "Encaminhado ao setor responsável"),
    ("in_progress", {}, "Em andamento"),
    ("waiting_customer", {"customer_note": "Envie a fatura de março."}, "Aguardando"),
    ("in_progress", {"internal_note": "fatura recebida"}, "Em andamento"),
    ("resolved", {"customer_note": "Cobrança estornada."}, "Resolvido"),
    ("closed", {}, "Encerrado"),
]


async def test_protocol_moves_through_its_statuses_one_sms_and_one_email_per_step(
    env: Env,
) -> None:
    number = await env.call()
    await wait_until(lambda: len(env.sms.accepted) == 1, what="the opening SMS")
    assert number in env.sms.texts()[0]
    assert env.sms.accepted[0].body["to"] == "+5511987654321"
    assert env.smtp.handler.messages == []  # no e-mail known at opening

    status, body, _ = await env.api.call(
        "PATCH",
        f"/api/v1/protocols/{number}",
        {
            "customer_email": "Maria@Exemplo.COM.br",
            "customer_name": "Maria Silva",
            "subject": "billing",
        },
    )
    assert status == 200, body
    assert body["customer_email"] == "Maria@exemplo.com.br"
    assert body["subject"] == "billing"

    for index, (to_status, extra, label) in enumerate(STEPS, start=1):
        status, body, _ = await env.api.call(
            "POST", f"/api/v1/protocols/{number}/transitions", {"to_status": to_status, **extra}
        )
        assert status == 200, body
        assert body["status"] == to_status
        await wait_until(
            lambda i=index: len(env.sms.accepted) == 1 + i and len(env.smtp.handler.messages) == i,
            what=f"notices of step {to_status}",
        )
        sms_text = env.sms.texts()[-1]
        mail = env.smtp.handler.messages[-1]
        assert number in sms_text and number in mail["Subject"]
        assert label.split()[0] in mail["Subject"]
        text = mail.get_content()
        assert f"Protocolo: {number}" in text and "Assunto: Cobrança" in text
        if "customer_note" in extra:
            assert extra["customer_note"] in text
        assert "fatura recebida" not in text and "fatura recebida" not in sms_text

    await wait_until(env.drained, what="the outbox drained")
    # Exactly one per step: nothing more arrives once everything is sent.
    assert len(env.sms.accepted) == 1 + len(STEPS)
    assert len(env.smtp.handler.messages) == len(STEPS)
    assert len(env.sms.requests) == len(env.sms.accepted)
    assert all(n == 1 for n in env.smtp.handler.by_message_id().values())
    mail = env.smtp.handler.messages[0]
    assert mail["To"] == "Maria@exemplo.com.br"
    assert mail["From"] == "SAC ACME <sac@acme.test>"
    assert mail["Message-ID"].endswith("@acme.test>")
    assert mail["Subject"].startswith("ACME – protocolo")
    assert mail.get_content().startswith("Olá, Maria,")

    status, body, _ = await env.api.call("GET", f"/api/v1/protocols/{number}")
    kinds = [e["kind"] for e in body["events"]]
    assert kinds.count("status") == len(STEPS)
    assert kinds.count("notification_sent") == 1 + 2 * len(STEPS)
    statuses = [(e["from_status"], e["to_status"]) for e in body["events"] if e["kind"] == "status"]
    assert statuses[0] == ("open", "forwarded") and statuses[-1] == ("resolved", "closed")
    assert all(e["actor"] == "ana" for e in body["events"] if e["kind"] in ("status", "field"))
    assert body["resolved_at"] is not None
    assert len(body["notifications"]) == 1 + 2 * len(STEPS)
    assert {n["status"] for n in body["notifications"]} == {"sent"}

    status, body, _ = await env.api.call(
        "POST", f"/api/v1/protocols/{number}/transitions", {"to_status": "in_progress"}
    )
    assert status == 409
    assert body["error"]["code"] == "transition_not_allowed"
    assert body["error"]["details"]["allowed"] == []


async def test_transition_not_allowed_lists_the_allowed_ones(env: Env) -> None:
    number = await env.call(callerid="1133334444")  # a landline: no SMS
    status, body, _ = await env.api.call(
        "POST", f"/api/v1/protocols/{number}/transitions", {"to_status": "closed"}
    )
    assert status == 409
    assert body["error"]["details"]["current_status"] == "open"
    assert body["error"]["details"]["allowed"] == [
        "forwarded",
        "in_progress",
        "waiting_customer",
        "resolved",
        "cancelled",
    ]
    async with env.running.core.sessionmaker() as session:
        protocol = await session.scalar(select(Protocol).where(Protocol.number == number))
        assert protocol.status == "open"
    assert await env.outbox() == []  # landline caller, no e-mail: nothing to send


async def test_resolved_can_be_reopened_and_resolved_at_follows(env: Env) -> None:
    number = await env.call(callerid="1133334444")
    for to_status in ("resolved", "in_progress"):
        status, body, _ = await env.api.call(
            "POST", f"/api/v1/protocols/{number}/transitions", {"to_status": to_status}
        )
        assert status == 200
        assert (body["resolved_at"] is not None) == (to_status == "resolved")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"subject": "weather"}, "subject"),
        ({"customer_document": "123.456.789-00"}, "customer_document"),
        ({"customer_email": "maria@"}, "customer_email"),
        ({"customer_phone": "12345"}, "customer_phone"),
        ({"department": "marketing"}, "department"),
        ({"customer_name": 42}, "customer_name"),
        ({"notes": "x" * 10001}, "notes"),
        ({}, "body"),
        ([1, 2], "body"),
    ],
)
async def test_patch_refuses_bad_fields_naming_them(env: Env, payload, field: str) -> None:
    number = await env.call(callerid="1133334444")
    status, body, _ = await env.api.call("PATCH", f"/api/v1/protocols/{number}", payload)
    assert status == 400, body
    assert body["error"]["details"]["field"] == field


async def test_patch_bad_json_and_auth(env: Env) -> None:
    number = await env.call(callerid="1133334444")
    status, body, _ = await env.api.call("PATCH", f"/api/v1/protocols/{number}", raw=b"{nope")
    assert status == 400 and body["error"]["details"]["field"] == "body"
    status, _, _ = await env.api.call(
        "PATCH", f"/api/v1/protocols/{number}", {"notes": "x"}, token=""
    )
    assert status == 401
    missing = env.running.core.protocol_format.render(date.today(), 999_999)
    status, _, _ = await env.api.call("PATCH", f"/api/v1/protocols/{missing}", {"notes": "x"})
    assert status == 404
    status, _, _ = await env.api.call(
        "POST", f"/api/v1/protocols/{missing}/transitions", {"to_status": "in_progress"}
    )
    assert status == 404


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "to_status"),
        ({"to_status": "done"}, "to_status"),
        ({"to_status": "forwarded"}, "department"),
        ({"to_status": "forwarded", "department": "nowhere"}, "department"),
        ({"to_status": "resolved", "why": "x"}, "why"),
        ({"to_status": "resolved", "customer_note": ["x"]}, "customer_note"),
    ],
)
async def test_transition_bodies_are_validated(env: Env, payload, field: str) -> None:
    number = await env.call(callerid="1133334444")
    status, body, _ = await env.api.call("POST", f"/api/v1/protocols/{number}/transitions", payload)
    assert status == 400, body
    assert body["error"]["details"]["field"] == field


async def test_patch_records_each_changed_field_and_normalises(env: Env) -> None:
    number = await env.call(callerid="1133334444")
    status, body, _ = await env.api.call(
        "PATCH",
        f"/api/v1/protocols/{number}",
        {
            "customer_document": "529.982.247-25",
            "customer_phone": "(21) 99876-5432",
            "customer_name": "  João  ",
            "department": "technical",
            "agent": "ana",
            "notes": "ligou duas vezes",
        },
    )
    assert status == 200, body
    assert body["customer_document"] == "52998224725"
    assert body["customer_phone"] == "+5521998765432"
    assert body["customer_name"] == "João"
    fields = [e["data"]["field"] for e in body["events"] if e["kind"] == "field"]
    assert sorted(fields) == sorted(
        ["customer_document", "customer_phone", "customer_name", "department", "agent", "notes"]
    )
    by_field = {e["data"]["field"]: e for e in body["events"] if e["kind"] == "field"}
    assert by_field["department"]["data"] == {
        "field": "department",
        "from": None,
        "to": "technical",
    }
    assert "52998224725" not in str(by_field["customer_document"]["data"])  # no value kept
    assert all(e["actor"] == "ana" for e in by_field.values())
    # The same values again: nothing changes, no new events.
    status, again, _ = await env.api.call(
        "PATCH", f"/api/v1/protocols/{number}", {"customer_document": "52998224725"}
    )
    assert status == 200 and len(again["events"]) == len(body["events"])
    # null clears
    status, cleared, _ = await env.api.call("PATCH", f"/api/v1/protocols/{number}", {"notes": None})
    assert cleared["notes"] is None
    # SMS now go to the phone the agent typed (a mobile), not the landline that called.
    await env.api.call(
        "POST", f"/api/v1/protocols/{number}/transitions", {"to_status": "in_progress"}
    )
    await wait_until(lambda: env.sms.accepted, what="an SMS")
    assert env.sms.accepted[-1].body["to"] == "+5521998765432"


async def test_cancellation_is_registered_effective_at_once_with_a_receipt(env: Env) -> None:
    number = await env.call()
    before = utcnow()
    status, body, _ = await env.api.call(
        "PATCH",
        f"/api/v1/protocols/{number}",
        {"subject": "cancellation", "customer_email": "x@y.com.br"},
    )
    assert status == 200
    event = next(e for e in body["events"] if e["kind"] == "cancellation_registered")
    assert event["data"]["effective_at"] >= before.isoformat()
    await wait_until(
        lambda: any("cancelamento" in m["Subject"] for m in env.smtp.handler.messages),
        what="the cancellation receipt",
    )
    receipt = next(m for m in env.smtp.handler.messages if "cancelamento" in m["Subject"])
    assert "efeito imediato" in receipt.get_content()
    await wait_until(lambda: any("cancelamento" in t for t in env.sms.texts()), what="SMS")


async def test_lifecycle_document_for_the_panel(env: Env) -> None:
    status, body, _ = await env.api.call("GET", "/api/v1/lifecycle")
    assert status == 200
    assert set(body) == {"statuses", "transitions", "subjects", "departments", "profile"}
    assert body["statuses"][0] == {"code": "open", "label_pt": "Aberto", "final": False}
    assert {s["code"] for s in body["statuses"] if s["final"]} == {"closed", "cancelled"}
    assert body["transitions"]["closed"] == []
    assert {"code": "complaint", "label_pt": "Reclamação"} in body["subjects"]
    assert {"code": "billing", "label_pt": "Financeiro"} in body["departments"]
    assert body["profile"]["code"] == "decreto-11034"
    assert body["profile"]["reply"] == "7d"
    status, _, _ = await env.api.call("GET", "/api/v1/lifecycle", token="")
    assert status == 401


async def test_due_date_is_set_at_opening_and_filters_find_overdue(env: Env) -> None:
    numbers = [await env.call(callerid="1133334444", uniqueid=f"d.{i}") for i in range(4)]
    config_tz = env.running.core.settings.tz
    async with env.running.core.sessionmaker() as session:
        rows = (await session.scalars(select(Protocol).where(Protocol.number.in_(numbers)))).all()
        for p in rows:
            local_opened = p.issued_at.astimezone(config_tz).date()
            assert p.due_at.astimezone(config_tz).date() == local_opened + timedelta(days=7)
    now = utcnow()
    async with env.running.core.sessionmaker() as session, session.begin():
        # 0: overdue; 1: due in 1 day; 2: due in 5 days; 3: overdue but answered
        for number, due in zip(numbers, [-1, 1, 5, -2], strict=True):
            await session.execute(
                update(Protocol)
                .where(Protocol.number == number)
                .values(due_at=now + timedelta(days=due))
            )
        await session.execute(
            update(Protocol).where(Protocol.number == numbers[3]).values(status="resolved")
        )
    status, body, _ = await env.api.call("GET", "/api/v1/protocols", overdue="true")
    assert status == 200
    assert [i["number"] for i in body["items"]] == [numbers[0]]
    status, body, _ = await env.api.call("GET", "/api/v1/protocols", due_within_days="2")
    assert [i["number"] for i in body["items"]] == [numbers[1]]
    status, body, _ = await env.api.call("GET", "/api/v1/protocols", due_within_days="10")
    assert sorted(i["number"] for i in body["items"]) == sorted(numbers[1:3])
    status, body, _ = await env.api.call(
        "GET", "/api/v1/protocols", overdue="true", due_within_days="2"
    )
    assert status == 400
    status, body, _ = await env.api.call("GET", "/api/v1/protocols", overdue="maybe")
    assert status == 400 and body["error"]["details"]["field"] == "overdue"


async def test_subject_with_a_longer_deadline_moves_the_due_date(db_url: str) -> None:
    async with make_env(db_url, legal_profile="ans") as env:
        number = await env.call(callerid="1133334444")
        _, before, _ = await env.api.call("GET", f"/api/v1/protocols/{number}")
        status, after, _ = await env.api.call(
            "PATCH", f"/api/v1/protocols/{number}", {"subject": "high_complexity"}
        )
        assert status == 200
        assert after["due_at"] > before["due_at"]
        field_event = next(e for e in after["events"] if e["kind"] == "field")
        assert field_event["data"]["due_at"] == after["due_at"]


async def test_caller_pressing_2_gets_the_protocol_by_sms(db_url: str) -> None:
    async with make_env(db_url, notify_open_sms=False) as env:
        result = await fake_call(
            "127.0.0.1",
            env.running.agi_port,
            callerid="11987654321",
            script=FakeCallScript(wait_keys=["2"]),
        )
        number = result.variables["SAC_PROTOCOL"]
        assert result.variables["SAC_SMS_REQUESTED"] == "1"
        assert "sac/protocol-sms-offer" in result.played
        assert result.played[-1] == "sac/protocol-sms-sent"
        await wait_until(lambda: env.sms.accepted, what="the requested SMS")
        assert env.sms.accepted[0].body["to"] == "+5511987654321"
        assert f"protocolo de atendimento e {number}" in env.sms.texts()[0]
        await wait_until(env.drained, what="the outbox drained")
        assert len(env.sms.accepted) == 1
        # A caller who did not press 2 gets no SMS (opening SMS is off here).
        other = await fake_call("127.0.0.1", env.running.agi_port, callerid="11987654322")
        assert "SAC_SMS_REQUESTED" not in other.variables
        async with env.running.core.sessionmaker() as session:
            kinds = (
                await session.scalars(
                    select(OutboxMessage.kind)
                    .join(Protocol)
                    .where(Protocol.number == other.variables["SAC_PROTOCOL"])
                )
            ).all()
        assert kinds == []


async def test_pressing_2_after_the_opening_sms_sends_no_duplicate(env: Env) -> None:
    result = await fake_call(
        "127.0.0.1", env.running.agi_port, script=FakeCallScript(wait_keys=["2"])
    )
    number = result.variables["SAC_PROTOCOL"]
    await wait_until(env.drained, what="the outbox drained")
    await wait_until(lambda: env.sms.accepted, what="SMS")
    assert len(env.sms.accepted) == 1
    async with env.running.core.sessionmaker() as session:
        event = await session.scalar(
            select(ProtocolEvent)
            .join(Protocol)
            .where(Protocol.number == number, ProtocolEvent.kind == "sms_requested")
        )
    assert event.data["result"] == "already_queued"


async def test_landline_caller_is_not_offered_the_sms(env: Env) -> None:
    """A landline cannot receive the SMS: the offer is not played and key 2 does
    nothing (no request, no outbox row)."""
    result = await fake_call(
        "127.0.0.1",
        env.running.agi_port,
        callerid="1133334444",
        script=FakeCallScript(wait_keys=["2"]),
    )
    number = result.variables["SAC_PROTOCOL"]
    assert "sac/protocol-sms-offer" not in result.played
    assert "SAC_SMS_REQUESTED" not in result.variables
    async with env.running.core.sessionmaker() as session:
        event = await session.scalar(
            select(ProtocolEvent)
            .join(Protocol)
            .where(Protocol.number == number, ProtocolEvent.kind == "sms_requested")
        )
    assert event is None
    assert await env.outbox() == []
    mobile = await fake_call("127.0.0.1", env.running.agi_port, callerid="11987654321")
    assert "sac/protocol-sms-offer" in mobile.played


async def test_cancellation_chosen_in_the_phone_menu_takes_effect_with_its_receipt(
    env: Env,
) -> None:
    """Decreto 6.523 art. 18 on the phone, as for an agent: effective at once, and
    the caller's mobile gets the receipt."""
    call = await fake_call(
        "127.0.0.1", env.running.agi_port, args=("1700.5",), callerid="11987654321"
    )
    number = call.variables["SAC_PROTOCOL"]
    await wait_until(env.drained, what="the opening notices")
    opened = len(await env.outbox())
    chosen = await fake_call(
        "127.0.0.1",
        env.running.agi_port,
        route="subject",
        args=(number, "cancellation", "1700.5"),  # the linkedid of the call that opened it
    )
    assert chosen.variables["SAC_RESULT"] == "OK"
    async with env.running.core.sessionmaker() as session:
        protocol = await session.scalar(select(Protocol).where(Protocol.number == number))
        kinds = (
            await session.scalars(
                select(ProtocolEvent.kind)
                .where(ProtocolEvent.protocol_id == protocol.id)
                .order_by(ProtocolEvent.id)
            )
        ).all()
    assert protocol.subject == "cancellation"
    # (delivery results of the notifications may interleave: they are sent meanwhile)
    changes = [k for k in kinds if not k.startswith("notification_")]
    assert changes[-2:] == ["menu_choice", "cancellation_registered"]
    outbox = await env.outbox()
    assert [m.kind for m in outbox[opened:]] == ["cancellation"]
    await wait_until(env.drained, what="the cancellation receipt")
    assert any("cancelamento" in text.lower() for text in env.sms.texts())
