"""Tokens and sessions (issue #8 item 13, and the live-stream cap of item 15): tokens
expire, are listed and revoked from the CLI and an admin API; the panel cookie holds
a server-side session that expires, ends at logout and ends with its token."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import select, update

from sac_ivr.auth.services import create_token, identify
from sac_ivr.auth.tables import ApiToken
from sac_ivr.db.engine import create_engine, make_sessionmaker
from sac_ivr.http.openapi import build_openapi
from tests.live_fakes import SseReader
from tests.privacy_helpers import Client, clients, service

SESSION = "/api/v1/session"
TOKENS = "/api/v1/tokens"
EVENTS = "/api/v1/live/events"


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sac_ivr", "token", *args, "--database-url", db_url],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _identify(db_url: str, token: str):
    engine = create_engine(db_url)
    try:
        return await identify(make_sessionmaker(engine), token)
    finally:
        await engine.dispose()


async def test_cli_creates_lists_and_revokes_tokens(db_url: str) -> None:
    made = cli(db_url, "create", "ana", "--role", "agent", "--expires-in", "30d")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("sac_") and "shown once" in made.stderr
    assert (await _identify(db_url, token)).name == "ana"

    listed = cli(db_url, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["name"], r["role"], r["active"]) for r in rows] == [("ana", "agent", True)]
    expires = datetime.fromisoformat(rows[0]["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    assert token not in listed.stdout and "sha256" not in listed.stdout

    assert cli(db_url, "create", "ana").returncode == 2  # the name has an active token
    revoked = cli(db_url, "revoke", "ana")
    assert revoked.returncode == 0, revoked.stderr
    assert await _identify(db_url, token) is None
    assert cli(db_url, "list", "--json").stdout.strip() == ""
    assert "revoked" in cli(db_url, "list", "--all").stdout
    # The holder gets a new token under the same name (same author on the timeline).
    again = cli(db_url, "create", "ana")
    assert again.returncode == 0 and (await _identify(db_url, again.stdout.strip())).name == "ana"
    assert cli(db_url, "revoke", "--id", "9999").returncode == 1
    assert cli(db_url, "create", "bia", "--expires-in", "soon").returncode == 2


async def test_admin_api_lists_creates_and_revokes_tokens(db_url: str) -> None:
    async with service(db_url) as running:
        sm = running.core.sessionmaker
        admin = await create_token(sm, "root", "admin")
        supervisor = await create_token(sm, "sueli", "supervisor")
        async with clients(running, "127.0.0.1", "127.0.0.1") as (c, browser):
            for method, path in (("GET", TOKENS), ("POST", TOKENS), ("DELETE", TOKENS + "/1")):
                r = await c.call(method, path, {"name": "x", "role": "agent"}, token=supervisor)
                assert r.status == 403, (method, path)
            future = (datetime.now(UTC) + timedelta(days=7)).isoformat()
            body = {"name": "bruno", "role": "agent", "extension": "PJSIP/1002"}
            made = await c.call("POST", TOKENS, {**body, "expires_at": future}, token=admin)
            assert made.status == 201, made.text
            assert made.headers["Cache-Control"] == "no-store"
            bruno = made.body["token"]
            assert made.body["name"] == "bruno" and made.body["active"] is True
            assert (await c.call("POST", TOKENS, body, token=admin)).status == 409
            for wrong, field in (
                ({**body, "name": "old", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
                ({**body, "name": "old", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
                ({**body, "name": " "}, "name"),
                ({**body, "name": "old", "role": "root"}, "role"),
                ({**body, "name": "old", "token": "sac_mine"}, "token"),
            ):
                r = await c.call("POST", TOKENS, wrong, token=admin)
                assert r.status == 400 and r.body["error"]["details"]["field"] == field, r.text

            # The holder uses it from a browser too.
            assert (await browser.call("POST", SESSION, {"token": bruno})).status == 200
            assert (await browser.get(SESSION)).status == 200

            listing = await c.get(TOKENS, token=admin)
            assert listing.status == 200
            by_name = {t["name"]: t for t in listing.body["items"]}
            assert set(by_name) == {"root", "sueli", "bruno"}
            assert by_name["bruno"]["live_sessions"] == 1
            assert bruno not in listing.text and "sha256" not in listing.text

            gone = await c.call("DELETE", f"{TOKENS}/{made.body['id']}", token=admin)
            assert gone.status == 200 and gone.body["active"] is False
            # Revoked: the token and the browser session it opened stop at once.
            assert (await c.get(SESSION, token=bruno)).status == 401
            assert (await browser.get(SESSION)).status == 401
            assert (await c.call("DELETE", f"{TOKENS}/424242", token=admin)).status == 404
            active = await c.get(TOKENS, token=admin)
            assert {t["name"] for t in active.body["items"]} == {"root", "sueli"}
            every = await c.get(TOKENS, token=admin, all="true")
            assert {t["name"] for t in every.body["items"]} == {"root", "sueli", "bruno"}
            # The name is free again for the holder's next token.
            assert (await c.call("POST", TOKENS, body, token=admin)).status == 201
    paths = build_openapi()["paths"]
    assert set(paths[TOKENS]) == {"get", "post"} and "delete" in paths[TOKENS + "/{id}"]


async def test_expired_tokens_and_sessions_are_refused(db_url: str) -> None:
    async with service(db_url) as running:
        sm = running.core.sessionmaker
        soon = datetime.now(UTC) + timedelta(hours=1)
        ana = await create_token(sm, "ana", "agent", expires_at=soon)
        bia = await create_token(sm, "bia", "agent")
        async with clients(running, "127.0.0.1", "127.0.0.1") as (ana_browser, bia_browser):
            assert (await ana_browser.call("POST", SESSION, {"token": ana})).status == 200
            assert (await bia_browser.call("POST", SESSION, {"token": bia})).status == 200
            async with sm() as session, session.begin():
                await session.execute(
                    update(ApiToken)
                    .where(ApiToken.name == "ana")
                    .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
                )
                # Bia's session outlived panels_session_hours; her token is fine.
                from sac_ivr.auth.tables import PanelSession

                bia_id = select(ApiToken.id).where(ApiToken.name == "bia").scalar_subquery()
                await session.execute(
                    update(PanelSession)
                    .where(PanelSession.token_id == bia_id)
                    .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
                )
            assert (await ana_browser.get(SESSION, token=ana)).status == 401
            assert (await ana_browser.get(SESSION)).status == 401
            assert (await ana_browser.call("POST", SESSION, {"token": ana})).status == 401
            assert (await bia_browser.get(SESSION)).status == 401
            assert (await bia_browser.get(SESSION, token=bia)).status == 200


async def test_logout_and_revocation_end_open_event_streams(sqlite_url: str) -> None:
    async with service(sqlite_url, panels_heartbeat_s=1.0) as running:
        sm = running.core.sessionmaker
        ana = await create_token(sm, "ana", "agent")
        bia = await create_token(sm, "bia", "agent")
        browser = Client(running.http_port)
        try:
            assert (await browser.call("POST", SESSION, {"token": ana})).status == 200
            async with (
                browser.session.get(browser.base + EVENTS) as by_cookie,
                aiohttp.ClientSession() as api,
                api.get(
                    browser.base + EVENTS, headers={"Authorization": f"Bearer {bia}"}
                ) as by_bia,
            ):
                assert by_cookie.status == 200 and by_bia.status == 200
                cookie_stream, bia_stream = SseReader(by_cookie), SseReader(by_bia)
                assert (await cookie_stream.next())[0] == "snapshot"
                assert (await bia_stream.next())[0] == "snapshot"
                assert (await browser.call("DELETE", SESSION)).status == 204
                await _ends(cookie_stream)
                async with sm() as session, session.begin():
                    await session.execute(
                        update(ApiToken)
                        .where(ApiToken.name == "bia")
                        .values(revoked_at=datetime.now(UTC))
                    )
                await _ends(bia_stream)
        finally:
            await browser.close()


async def _ends(stream: SseReader) -> None:
    """The stream closes (bounded: a broken test fails instead of hanging)."""
    try:
        async with asyncio.timeout(30):
            while True:
                await stream.next(skip=("heartbeat", "snapshot"), hang_guard_s=30)
    except EOFError:
        return
    except aiohttp.ClientPayloadError:
        return


async def test_live_streams_per_token_are_capped(sqlite_url: str) -> None:
    async with service(
        sqlite_url, panels_max_streams_per_token=2, panels_heartbeat_s=1.0
    ) as running:
        sm = running.core.sessionmaker
        ana = await create_token(sm, "ana", "agent")
        bia = await create_token(sm, "bia", "agent")
        url = f"http://127.0.0.1:{running.http_port}{EVENTS}"
        sessions = [aiohttp.ClientSession() for _ in range(4)]
        try:
            first = await sessions[0].get(url, headers={"Authorization": f"Bearer {ana}"})
            second = await sessions[1].get(url, headers={"Authorization": f"Bearer {ana}"})
            assert first.status == second.status == 200
            for response in (first, second):
                assert (await SseReader(response).next())[0] == "snapshot"
            async with sessions[2].get(url, headers={"Authorization": f"Bearer {ana}"}) as third:
                assert third.status == 429
                assert int(third.headers["Retry-After"]) >= 1
                assert (await third.json())["error"]["code"] == "too_many_streams"
            async with sessions[3].get(url, headers={"Authorization": f"Bearer {bia}"}) as other:
                assert other.status == 200  # the cap is per token
            first.close()  # a tab closed: its slot comes back once the server notices
            deadline = time.monotonic() + 30
            while True:
                async with sessions[2].get(url, headers={"Authorization": f"Bearer {ana}"}) as r:
                    if r.status == 200:
                        break
                    assert r.status == 429 and time.monotonic() < deadline
                await asyncio.sleep(0.2)
            second.close()
        finally:
            for s in sessions:
                await s.close()
