"""The public lookup (issue #8 item 11): a number alone shows the status and the
dates to the day; the subject and the customer's notes need a second factor or a
signed link; limits per client address and per number answer 429 with Retry-After;
every lookup is counted."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import update
from stdnum import damm

from sac_ivr.auth.services import create_token
from sac_ivr.protocols.tables import Protocol
from tests.privacy_helpers import clients, new_call, service

PATH = "/api/v1/protocols/{}"
CPF = "529.982.247-25"


async def _prepare(running, number: str) -> str:
    """Subject, CPF, a note for the customer and an internal one on ``number``."""
    agent = await create_token(running.core.sessionmaker, "ana", "agent")
    async with clients(running, "127.0.0.1") as (c,):
        r = await c.call(
            "PATCH",
            PATH.format(number),
            {"subject": "billing", "customer_document": CPF},
            token=agent,
        )
        assert r.status == 200, r.text
        r = await c.call(
            "POST",
            PATH.format(number) + "/transitions",
            {
                "to_status": "in_progress",
                "customer_note": "Estamos revisando a sua fatura.",
                "internal_note": "cliente ligou irritado",
            },
            token=agent,
        )
        assert r.status == 200, r.text
    return agent


async def test_a_number_alone_shows_status_and_local_dates_only(db_url: str) -> None:
    async with service(db_url) as running:
        number = await new_call(running, callerid="11987654321", calleridname="Maria Silva")
        await _prepare(running, number)
        # Near midnight: 02:30 UTC is still the day before in São Paulo (UTC-3).
        async with running.core.sessionmaker() as session, session.begin():
            await session.execute(
                update(Protocol)
                .where(Protocol.number == number)
                .values(
                    issued_at=datetime(2026, 3, 10, 2, 30, tzinfo=UTC),
                    updated_at=datetime(2026, 3, 12, 1, 0, tzinfo=UTC),
                    due_at=datetime(2026, 3, 17, 2, 59, 59, tzinfo=UTC),
                )
            )
        async with clients(running, "127.0.0.1") as (c,):
            r = await c.get(PATH.format(number))
        assert r.status == 200
        assert r.body == {
            "number": number,
            "status": "in_progress",
            "status_label": "Em andamento",
            "opened_on": "2026-03-09",
            "updated_on": "2026-03-11",
            "due_on": "2026-03-16",
            "verified": False,
        }
        for secret in ("billing", "Cobrança", "revisando", "irritado", "4321", "Maria", "52998"):
            assert secret not in r.text


async def test_second_factor_opens_the_subject_and_the_customer_notes(db_url: str) -> None:
    from sac_ivr.auth.keys import key, link_signature
    from sac_ivr.protocols.public import signed_query

    async with service(db_url) as running:
        number = await new_call(running, callerid="11987654321")
        await _prepare(running, number)
        async with clients(running, "127.0.0.1") as (c,):
            wrong = await c.get(PATH.format(number), verify="0000")
            by_phone = await c.get(PATH.format(number), verify="4321")
            by_cpf = await c.get(PATH.format(number), verify="4725")
            malformed = await c.get(PATH.format(number), verify="43a1")
            link = await c.get(PATH.format(number) + "?" + await signed_query(running.core, number))
            secret = await key(running.core, "lookup_link")
            expires = int(time.time()) - 10
            expired = await c.get(
                PATH.format(number),
                expires=str(expires),
                signature=link_signature(secret, number, expires),
            )
            forged = await c.get(
                PATH.format(number), expires=str(int(time.time()) + 3600), signature="A" * 22
            )
        assert wrong.status == 403 and wrong.body["error"]["code"] == "verification_failed"
        assert "billing" not in wrong.text and "revisando" not in wrong.text
        assert malformed.status == 400 and malformed.body["error"]["details"]["field"] == "verify"
        for r in (by_phone, by_cpf, link):
            assert r.status == 200, r.text
            assert r.body["verified"] is True
            assert r.body["subject"] == "billing" and r.body["subject_label"] == "Cobrança"
            assert [n["note"] for n in r.body["notes"]] == ["Estamos revisando a sua fatura."]
            assert r.body["notes"][0]["status_label"] == "Em andamento"
            assert "irritado" not in r.text  # internal notes never
            assert "987654321" not in r.text and "52998224725" not in r.text
        assert expired.status == 403 and forged.status == 403


async def test_wrong_second_factors_lock_the_number_and_the_address(db_url: str) -> None:
    from sac_ivr.protocols.public import signed_query

    overrides = {"public_verify_failures_per_number": 3, "public_verify_failures_per_client": 5}
    async with service(db_url, **overrides) as running:
        number = await new_call(running, callerid="11987654321")
        others = [await new_call(running, callerid="21912345678") for _ in range(3)]
        async with clients(running, "127.0.0.2", "127.0.0.3", "127.0.0.4") as (a, b, c):
            # Three wrong guesses on one number, from two addresses...
            for client, guess in ((a, "0001"), (b, "0002"), (a, "0003")):
                assert (await client.get(PATH.format(number), verify=guess)).status == 403
            # ...lock that number's second factor for everyone, right digits included.
            locked = await c.get(PATH.format(number), verify="4321")
            assert locked.status == 429
            assert locked.body["error"]["code"] == "verification_locked"
            assert int(locked.headers["Retry-After"]) > 3600  # a day's bucket
            assert (await c.get(PATH.format(number))).status == 200  # the number alone still works
            # A signed link is not a guess: it still opens the number.
            link = await c.get(PATH.format(number) + "?" + await signed_query(running.core, number))
            assert link.status == 200 and link.body["verified"] is True
            # An address runs out of wrong guesses across numbers: b has 1, then 4 more.
            for other in others:
                assert (await b.get(PATH.format(other), verify="0000")).status == 403
            assert (await b.get(PATH.format(others[0]), verify="0000")).status == 403
            r = await b.get(PATH.format(others[1]), verify="5678")  # even the right digits
            assert r.status == 429 and r.body["error"]["code"] == "verification_locked"
            assert (await c.get(PATH.format(others[1]), verify="5678")).status == 200


async def test_lookups_per_address_are_limited_with_retry_after(db_url: str) -> None:
    # The default: 300 an hour in bursts of 30. One address checking numbers in a
    # loop is stopped after the burst; another address and agents are not.
    async with service(db_url) as running:
        number = await new_call(running)
        token = await create_token(running.core.sessionmaker, "ana", "agent")
        served = refused = 0
        async with clients(running, "127.0.0.5", "127.0.0.6") as (flood, other):
            deadline = time.monotonic() + 60
            for _ in range(120):
                r = await flood.get(PATH.format(number))
                if r.status == 429:
                    refused += 1
                    assert r.body["error"]["code"] == "rate_limited"
                    assert 1 <= int(r.headers["Retry-After"]) <= 3600
                else:
                    assert r.status == 200
                    served += 1
                assert time.monotonic() < deadline
            assert served <= 31 and refused >= 89  # at most the burst (+1 refilled)
            assert (await other.get(PATH.format(number))).status == 200
            assert (await flood.get(PATH.format(number), token=token)).status == 200
            # Malformed and unknown numbers spend the budget too (no free probing).
            assert (await flood.get(PATH.format("123"))).status == 429


async def test_trusted_proxy_forwards_the_client_address(sqlite_url: str) -> None:
    overrides = {"public_lookups_per_hour": 20, "trusted_proxies": "127.0.0.7/32"}
    async with service(sqlite_url, **overrides) as running:
        number = await new_call(running)
        async with clients(running, "127.0.0.7", "127.0.0.8") as (proxy, direct):

            async def via(client, forwarded: str) -> int:
                r = await client.get(PATH.format(number), headers={"X-Forwarded-For": forwarded})
                return r.status

            # Behind the trusted proxy, each forwarded client has its own budget (2).
            assert [await via(proxy, "198.51.100.1") for _ in range(3)] == [200, 200, 429]
            assert await via(proxy, "198.51.100.2") == 200
            # The client cannot pick an address: only the proxy's own entry counts.
            assert await via(proxy, "203.0.113.9, 198.51.100.1") == 429
            # A client that is not a trusted proxy gains nothing from the header.
            assert [await via(direct, f"192.0.2.{i}") for i in range(3)] == [200, 200, 429]


async def test_lookups_are_counted_by_outcome(db_url: str) -> None:
    # 50 an hour: bursts of 5, so the sixth lookup in a row is refused.
    async with service(db_url, public_lookups_per_hour=50) as running:
        number = await new_call(running, callerid="11987654321")
        supervisor = await create_token(running.core.sessionmaker, "sueli", "supervisor")
        agent = await create_token(running.core.sessionmaker, "ana", "agent")
        unknown = "20200101999999" + damm.calc_check_digit("20200101999999")  # no such one
        async with clients(running, "127.0.0.9", "127.0.0.10") as (c, d):
            assert (await c.get(PATH.format(number))).status == 200
            assert (await c.get(PATH.format(number), verify="4321")).status == 200
            assert (await c.get(PATH.format(number), verify="1111")).status == 403
            assert (await c.get(PATH.format(unknown))).status == 404
            assert (await c.get(PATH.format("20261"))).status == 400
            assert (await c.get(PATH.format(number))).status == 429
            report = await d.get("/api/v1/public-lookups", token=supervisor)
            refused = await d.get("/api/v1/public-lookups", token=agent)
            csv = await d.get("/api/v1/public-lookups", token=supervisor, format="csv")
        assert refused.status == 403
        assert report.status == 200 and report.body["total"] == 1
        today = report.body["items"][0]
        assert today["day"] == datetime.now(running.core.settings.tz).date().isoformat()
        assert {k: today[k] for k in today if k != "day"} == {
            "found": 1,
            "verified": 1,
            "verify_failed": 1,
            "not_found": 1,
            "invalid": 1,
            "limited": 1,
        }
        assert (
            csv.text.splitlines()[0] == "day,found,not_found,invalid,verified,verify_failed,limited"
        )
