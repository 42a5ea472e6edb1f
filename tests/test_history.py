"""History of demands: every change and reply of a customer's requests, as JSON and
as a printable page; the request for it tracked against its legal deadline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from sac_ivr.auth.services import create_token
from sac_ivr.db.base import utcnow
from sac_ivr.history.tables import HistoryRequest
from tests.notify_fakes import Env, make_env, wait_until


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    async with make_env(db_url) as e:
        yield e


async def seed(env: Env) -> tuple[str, str, str]:
    """Two requests from Maria's mobile (one with her CPF), one from her office
    landline identified by the same CPF, one from someone else."""
    first = await env.call(callerid="11987654321", uniqueid="h.1")
    second = await env.call(callerid="11987654321", uniqueid="h.2")
    office = await env.call(callerid="1133334444", uniqueid="h.3")
    await env.call(callerid="21988887777", uniqueid="h.4")
    await env.api.call(
        "PATCH",
        f"/api/v1/protocols/{first}",
        {"subject": "billing", "customer_document": "529.982.247-25", "notes": "NOTA-INTERNA"},
    )
    await env.api.call(
        "POST",
        f"/api/v1/protocols/{first}/transitions",
        {
            "to_status": "resolved",
            "customer_note": "Valor estornado na próxima fatura.",
            "internal_note": "SEGREDO-DO-SETOR",
        },
    )
    await env.api.call("PATCH", f"/api/v1/protocols/{office}", {"customer_document": "52998224725"})
    return first, second, office


async def test_history_json_by_phone_and_by_document(env: Env) -> None:
    first, second, office = await seed(env)
    status, body, text = await env.api.call("GET", "/api/v1/history", phone="(11) 98765-4321")
    assert status == 200
    assert [p["number"] for p in body["protocols"]] == [second, first]  # newest first
    assert body["total"] == 2 and body["customer"]["phone"] == "+5511987654321"
    resolved = body["protocols"][1]
    assert resolved["status"] == "resolved" and resolved["status_label"] == "Resolvido"
    assert resolved["subject_label"] == "Cobrança"
    descriptions = [e["description"] for e in resolved["events"]]
    assert descriptions[0] == "Protocolo aberto"
    assert "Situação alterada de “Aberto” para “Resolvido”" in descriptions
    reply = next(e for e in resolved["events"] if e["kind"] == "status")
    assert reply["customer_note"] == "Valor estornado na próxima fatura."
    assert "SEGREDO-DO-SETOR" not in text and "NOTA-INTERNA" not in text
    assert "Dados cadastrais atualizados (CPF/CNPJ)" in descriptions
    status, body, _ = await env.api.call("GET", "/api/v1/history", document="52998224725")
    assert sorted(p["number"] for p in body["protocols"]) == sorted([first, office])
    status, body, _ = await env.api.call(
        "GET", "/api/v1/history", document="52998224725", phone="11987654321"
    )
    assert sorted(p["number"] for p in body["protocols"]) == sorted([first, second, office])


async def test_history_as_a_printable_page(env: Env) -> None:
    first, second, _ = await seed(env)
    status, _, html = await env.api.call(
        "GET", "/api/v1/history", phone="11987654321", format="html"
    )
    assert status == 200
    assert html.startswith("<!doctype html>") and 'lang="pt-BR"' in html
    assert "Histórico de demandas – ACME" in html
    assert f'data-protocol="{first}"' in html and f'data-protocol="{second}"' in html
    assert "Valor estornado na próxima fatura." in html
    assert "SEGREDO-DO-SETOR" not in html and "NOTA-INTERNA" not in html
    assert "987654321" not in html  # the phone is masked on paper
    assert "@media print" in html


async def test_history_queries_are_validated(env: Env) -> None:
    for params, field in [
        ({}, "phone"),
        ({"phone": "12"}, "phone"),
        ({"document": "1"}, "document"),
    ]:
        status, body, _ = await env.api.call("GET", "/api/v1/history", **params)
        assert status == 400 and body["error"]["details"]["field"] == field
    status, _, _ = await env.api.call("GET", "/api/v1/history", phone="11987654321", format="pdf")
    assert status == 400
    status, _, _ = await env.api.call("GET", "/api/v1/history", token="", phone="11987654321")
    assert status == 401


async def test_history_request_by_email_is_tracked_until_delivered(env: Env) -> None:
    first, _, _ = await seed(env)
    before = utcnow()
    status, created, _ = await env.api.call(
        "POST",
        "/api/v1/history-requests",
        {"phone": "11987654321", "email": "maria@exemplo.com.br", "protocol": first},
    )
    assert status == 201, created
    assert created["delivery"] == "email" and created["delivered_at"] is None
    tz = env.running.core.settings.tz
    local_day = before.astimezone(tz).date()
    due = created["due_at"]
    from datetime import datetime

    assert datetime.fromisoformat(due).astimezone(tz).date() == local_day + timedelta(days=5)
    mail = await wait_until(
        lambda: next((m for m in env.smtp.handler.messages if "histórico" in m["Subject"]), None),
        what="the history e-mail",
    )
    assert mail["To"] == "maria@exemplo.com.br"
    html = mail.get_body(preferencelist=("html",)).get_content()
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert f'data-protocol="{first}"' in html and first in text
    assert "Valor estornado na próxima fatura." in text

    async def delivered():
        _, body, _ = await env.api.call("GET", f"/api/v1/history-requests/{created['id']}")
        return body if body["delivered_at"] else None

    body = await wait_until(delivered, what="the request marked delivered")
    assert body["delivered_via"] == "email" and body["overdue"] is False
    _, protocol, _ = await env.api.call("GET", f"/api/v1/protocols/{first}")
    event = next(e for e in protocol["events"] if e["kind"] == "history_requested")
    assert event["data"]["history_request_id"] == created["id"]
    status, listing, _ = await env.api.call("GET", "/api/v1/history-requests", pending="true")
    assert listing["total"] == 0


async def test_history_request_by_mail_overdue_then_delivered(env: Env) -> None:
    await seed(env)
    status, created, _ = await env.api.call(
        "POST", "/api/v1/history-requests", {"document": "529.982.247-25", "delivery": "mail"}
    )
    assert status == 201
    rid = created["id"]
    _, listing, _ = await env.api.call("GET", "/api/v1/history-requests", overdue="true")
    assert listing["total"] == 0
    async with env.running.core.sessionmaker() as session, session.begin():
        await session.execute(
            update(HistoryRequest)
            .where(HistoryRequest.id == rid)
            .values(due_at=utcnow() - timedelta(hours=1))
        )
    _, listing, _ = await env.api.call("GET", "/api/v1/history-requests", overdue="true")
    assert [i["id"] for i in listing["items"]] == [rid] and listing["items"][0]["overdue"]
    supervisor = await create_token(env.running.core.sessionmaker, "sueli", "supervisor")
    _, _, raw = await env.api.call(
        "GET", "/api/v1/history-requests", overdue="true", format="csv", token=supervisor
    )
    assert raw.splitlines()[0].startswith("id,requested_at") and str(rid) in raw
    status, doc, _ = await env.api.call("GET", f"/api/v1/history-requests/{rid}/document")
    assert status == 200 and doc["total"] == 2
    status, done, _ = await env.api.call(
        "POST", f"/api/v1/history-requests/{rid}/delivered", {"via": "mail"}
    )
    assert status == 200 and done["delivered_via"] == "mail" and done["delivered_by"] == "ana"
    status, _, _ = await env.api.call(
        "POST", f"/api/v1/history-requests/{rid}/delivered", {"via": "mail"}
    )
    assert status == 409
    _, listing, _ = await env.api.call("GET", "/api/v1/history-requests", overdue="true")
    assert listing["total"] == 0


async def test_history_request_bodies_are_validated(env: Env) -> None:
    cases = [
        ({"delivery": "mail"}, "phone"),
        ({"phone": "11987654321"}, "email"),
        ({"phone": "11987654321", "delivery": "pigeon"}, "delivery"),
        ({"phone": "11987654321", "delivery": "mail", "when": "now"}, "when"),
        ({"phone": "11987654321", "delivery": "mail", "protocol": "123"}, "protocol"),
        ({"phone": "11987654321", "email": "not-an-address"}, "email"),
    ]
    for payload, field in cases:
        status, body, _ = await env.api.call("POST", "/api/v1/history-requests", payload)
        assert status == 400, (payload, body)
        assert body["error"]["details"]["field"] == field
    missing = env.running.core.protocol_format.render(utcnow().date(), 999_999)
    status, _, _ = await env.api.call(
        "POST",
        "/api/v1/history-requests",
        {"phone": "11987654321", "delivery": "mail", "protocol": missing},
    )
    assert status == 404
    status, _, _ = await env.api.call("GET", "/api/v1/history-requests/999999")
    assert status == 404


async def test_history_deadline_follows_the_profile(db_url: str) -> None:
    async with make_env(db_url, legal_profile="decreto-6523") as env:
        status, created, _ = await env.api.call(
            "POST", "/api/v1/history-requests", {"phone": "11987654321", "delivery": "in_person"}
        )
        assert status == 201
        from datetime import datetime

        requested = datetime.fromisoformat(created["requested_at"])
        assert datetime.fromisoformat(created["due_at"]) - requested == timedelta(hours=72)
