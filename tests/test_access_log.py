"""Agents (issue #8 item 14): every read of a customer's personal data is in an
access log supervisors query; bulk CSV exports are for supervisors; the author of a
change, and who a protocol is assigned to, come from the token."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select, text

from sac_ivr.auth.services import create_token
from sac_ivr.protocols.tables import Protocol, ProtocolEvent
from tests.privacy_helpers import clients, new_call, service

CPF = "529.982.247-25"
LOG = "/api/v1/access-log"


async def test_reads_of_personal_data_are_in_the_access_log(db_url: str) -> None:
    async with service(db_url) as running:
        sm = running.core.sessionmaker
        ana = await create_token(sm, "ana", "agent")
        sueli = await create_token(sm, "sueli", "supervisor")
        number = await new_call(running, callerid="11987654321", calleridname="Maria Silva")
        other = await new_call(running, callerid="21912345678")
        async with clients(running, "127.0.0.11", "127.0.0.12") as (agent, boss):
            patch = await agent.call(
                "PATCH", f"/api/v1/protocols/{number}", {"customer_document": CPF}, token=ana
            )
            assert patch.status == 200
            reads = [
                await agent.get(f"/api/v1/protocols/{number}", token=ana),
                await agent.get("/api/v1/protocols", token=ana, phone="(11) 98765-4321"),
                await agent.get("/api/v1/protocols", token=ana, document="52998224725"),
                await agent.get("/api/v1/history", token=ana, document=CPF),
                await agent.get("/api/v1/calls", token=ana, phone="11987654321"),
                await agent.get("/api/v1/protocols", token=ana, status="open"),
            ]
            assert [r.status for r in reads] == [200] * 6
            assert (await boss.get(LOG, token=ana)).status == 403  # supervisors only

            everything = await boss.get(LOG, token=sueli)
            assert everything.status == 200
            assert everything.body["total"] == 6 and everything.body["offset"] == 0
            items = everything.body["items"]
            assert [i["action"] for i in items] == [
                "protocols.list",
                "calls.list",
                "history.read",
                "protocols.list",
                "protocols.list",
                "protocol.read",
            ]
            first = items[-1]
            assert first["actor"] == "ana" and first["role"] == "agent"
            assert first["endpoint"] == "GET /api/v1/protocols/{number}"
            assert first["client"] == "127.0.0.11" and first["protocols"] == [number]
            assert items[0]["protocols"] == sorted([number, other]) and items[0]["rows"] == 2
            assert items[0]["searched_by"] == []
            assert items[1]["searched_by"] == ["phone"] and items[3]["searched_by"] == ["document"]

            async def numbers_of(**query: str) -> list[str]:
                r = await boss.get(LOG, token=sueli, **query)
                assert r.status == 200, r.text
                return [i["action"] for i in r.body["items"]]

            # "Who looked this customer up?" by phone (any format) or CPF/CNPJ (punctuated
            # or not), though neither is stored.
            assert await numbers_of(phone="+55 11 98765-4321") == ["calls.list", "protocols.list"]
            assert await numbers_of(document=CPF) == ["history.read", "protocols.list"]
            assert await numbers_of(protocol=number) == [
                "protocols.list",
                "history.read",
                "protocols.list",
                "protocols.list",
                "protocol.read",
            ]
            assert await numbers_of(protocol=other) == ["protocols.list"]
            assert await numbers_of(actor="ana", action="history.read") == ["history.read"]
            assert await numbers_of(actor="bruno") == []
            bad = await boss.get(LOG, token=sueli, phone="12")
            assert bad.status == 400 and bad.body["error"]["details"]["field"] == "phone"
            exported = await boss.get(LOG, token=sueli, format="csv", limit="2")
            rows = list(csv.DictReader(io.StringIO(exported.text)))
            assert [r["action"] for r in rows] == ["protocols.list", "calls.list"]
            assert rows[0]["actor"] == "ana"
        # The log itself holds no phone or CPF in clear.
        async with sm() as session:
            stored = [
                tuple(row)
                for table in ("access_log", "access_log_protocols")
                for row in (await session.execute(text(f"SELECT * FROM {table}"))).all()
            ]
        dump = repr(stored)
        for secret in ("987654321", "98765-4321", "52998224725", "529.982", "Maria"):
            assert secret not in dump


async def test_bulk_csv_exports_are_for_supervisors(db_url: str) -> None:
    async with service(db_url) as running:
        sm = running.core.sessionmaker
        ana = await create_token(sm, "ana", "agent")
        sueli = await create_token(sm, "sueli", "supervisor")
        await new_call(running, callerid="11987654321")
        async with clients(running, "127.0.0.1") as (c,):
            for path in ("/api/v1/protocols", "/api/v1/calls", "/api/v1/history-requests"):
                refused = await c.get(path, token=ana, format="csv")
                assert refused.status == 403, path
                assert refused.body["error"]["code"] == "forbidden"
                assert (await c.get(path, token=ana)).status == 200, path  # paging in JSON
                allowed = await c.get(path, token=sueli, format="csv")
                assert allowed.status == 200 and allowed.headers["Content-Type"].startswith(
                    "text/csv"
                )


async def test_the_author_and_the_assignee_come_from_tokens(db_url: str) -> None:
    async with service(db_url) as running:
        sm = running.core.sessionmaker
        ana = await create_token(sm, "ana", "agent")
        await create_token(sm, "bruno", "agent")
        sueli = await create_token(sm, "sueli", "supervisor")
        number = await new_call(running)
        path = f"/api/v1/protocols/{number}"

        async def timeline() -> list[tuple[str, str, dict]]:
            async with sm() as session:
                rows = await session.scalars(
                    select(ProtocolEvent)
                    .join(Protocol)
                    .where(Protocol.number == number, ProtocolEvent.kind == "field")
                    .order_by(ProtocolEvent.id)
                )
                return [(e.actor, e.kind, e.data) for e in rows]

        async with clients(running, "127.0.0.1") as (c,):
            # An agent cannot credit another agent, nor unassign.
            for value in ("bruno", None, "ANA"):
                r = await c.call("PATCH", path, {"agent": value}, token=ana)
                assert r.status == 403 and r.body["error"]["details"]["field"] == "agent"
            assert await timeline() == []
            r = await c.call("PATCH", path, {"agent": "ana", "notes": "ligar amanhã"}, token=ana)
            assert r.status == 200 and r.body["agent"] == "ana"
            # A supervisor assigns to someone who holds a token, never to a made-up name.
            r = await c.call("PATCH", path, {"agent": "fantasma"}, token=sueli)
            assert r.status == 400 and r.body["error"]["details"]["field"] == "agent"
            r = await c.call("PATCH", path, {"agent": "bruno"}, token=sueli)
            assert r.status == 200 and r.body["agent"] == "bruno"
        assert await timeline() == [
            ("ana", "field", {"field": "notes"}),
            ("ana", "field", {"field": "agent", "from": None, "to": "ana"}),
            ("sueli", "field", {"field": "agent", "from": "ana", "to": "bruno"}),
        ]


async def test_reads_go_on_while_the_access_log_cannot_be_written(sqlite_url: str) -> None:
    """The log is written in the background: a read never waits for it, and entries
    held while the table cannot be written are written afterwards, none lost."""
    async with service(sqlite_url) as running:
        sm = running.core.sessionmaker
        ana = await create_token(sm, "ana", "agent")
        sueli = await create_token(sm, "sueli", "supervisor")
        number = await new_call(running)
        async with sm() as session, session.begin():
            await session.execute(text("ALTER TABLE access_log RENAME TO access_log_away"))
        async with clients(running, "127.0.0.1") as (c,):
            for _ in range(3):
                assert (await c.get(f"/api/v1/protocols/{number}", token=ana)).status == 200
            async with sm() as session, session.begin():
                await session.execute(text("ALTER TABLE access_log_away RENAME TO access_log"))
            r = await c.get(LOG, token=sueli, protocol=number)
        assert r.status == 200 and r.body["total"] == 3
