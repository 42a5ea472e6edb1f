"""While the database is down the API answers 503 with Retry-After and a JSON error
(not 500), and serves again as soon as the database is back.

PostgreSQL: a private cluster (tests/private_postgres.py) that the test stops and
starts again; the machine's shared server is never touched. SQLite: a database file
that cannot be opened.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from sac_ivr.auth.services import create_token
from sac_ivr.db.engine import create_engine, create_read_engine, make_read_sessionmaker
from sac_ivr.db.migrate import upgrade_async
from sac_ivr.runner import RunningService, start_service
from tests.conftest import make_settings
from tests.fakeasterisk.agi import fake_call
from tests.private_postgres import PrivatePostgres


def requests_for(number: str) -> list[tuple[str, str, dict | None, bool]]:
    """(method, path, JSON body, with token) touching each feature's tables."""
    return [
        ("GET", f"/api/v1/protocols/{number}", None, False),
        ("GET", f"/api/v1/protocols/{number}", None, True),
        ("GET", "/api/v1/protocols?phone=11987654321", None, True),
        ("PATCH", f"/api/v1/protocols/{number}", {"notes": "retorno amanhã"}, True),
        ("POST", f"/api/v1/protocols/{number}/transitions", {"to_status": "in_progress"}, True),
        ("GET", "/api/v1/calls", None, True),
        ("GET", "/api/v1/history?phone=11987654321", None, True),
        ("GET", "/api/v1/history-requests", None, True),
        ("GET", "/api/v1/notifications", None, True),
        ("GET", "/api/v1/reports/summary", None, True),
        ("GET", "/api/v1/reports/pending?format=csv", None, True),
        ("GET", "/reports", None, True),
        ("GET", "/api/v1/session", None, True),
        ("POST", "/api/v1/session", {"token": "sac_x"}, False),
    ]


async def send(
    http: aiohttp.ClientSession, running: RunningService, token: str, request: tuple
) -> tuple[int, dict[str, str], bytes]:
    method, path, body, with_token = request
    headers = {"Authorization": f"Bearer {token}"} if with_token else {}
    url = f"http://127.0.0.1:{running.http_port}{path}"
    async with http.request(method, url, json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def assert_unavailable(running: RunningService, token: str, number: str) -> None:
    async with aiohttp.ClientSession() as http:
        for request in requests_for(number):
            status, headers, body = await send(http, running, token, request)
            assert status == 503, (request, body[:200])
            assert int(headers["Retry-After"]) > 0
            assert headers["Content-Type"].startswith("application/json")
            error = json.loads(body)["error"]
            assert error["code"] == "database_unavailable"
        async with http.get(f"http://127.0.0.1:{running.http_port}/healthz") as r:
            assert r.status == 503 and int(r.headers["Retry-After"]) > 0


async def test_postgres_down_is_503_with_retry_after_and_then_recovers() -> None:
    pg = PrivatePostgres()
    await asyncio.to_thread(pg.__enter__)
    try:
        await upgrade_async(pg.url)
        running = await start_service(make_settings(pg.url), migrate=False)
        try:
            token = await create_token(running.core.sessionmaker, "sofia", "supervisor")
            call = await fake_call("127.0.0.1", running.agi_port, callerid="11987654321")
            number = call.variables["SAC_PROTOCOL"]
            async with aiohttp.ClientSession() as http:
                for request in requests_for(number)[:3]:
                    status, _, _ = await send(http, running, token, request)
                    assert status == 200, request

            await asyncio.to_thread(pg.stop)
            await assert_unavailable(running, token, number)

            await asyncio.to_thread(pg.start)
            async with aiohttp.ClientSession() as http:
                for request in requests_for(number):
                    status, _, body = await send(http, running, token, request)
                    expected = 401 if request[1] == "/api/v1/session" and not request[3] else 200
                    assert status == expected, (request, body[:200])
        finally:
            await running.stop(drain_seconds=1.0)
    finally:
        await asyncio.to_thread(pg.__exit__, None, None, None)


async def test_sqlite_file_that_cannot_be_opened_is_503(
    running_sqlite: RunningService, tmp_path: Path
) -> None:
    running = running_sqlite
    token = await create_token(running.core.sessionmaker, "sofia", "supervisor")
    call = await fake_call("127.0.0.1", running.agi_port, callerid="11987654321")
    number = call.variables["SAC_PROTOCOL"]
    good_engine = running.core.engine
    good_reader = running.core.reader
    # A directory where the database file should be: every connection fails.
    broken = create_engine(f"sqlite+aiosqlite:///{tmp_path}")
    running.core.engine = broken
    running.core.sessionmaker.configure(bind=broken)
    broken_reader = create_read_engine(broken)
    running.core.reader = make_read_sessionmaker(broken_reader)
    try:
        await assert_unavailable(running, token, number)
    finally:
        running.core.engine = good_engine
        running.core.sessionmaker.configure(bind=good_engine)
        running.core.reader = good_reader
        await broken_reader.dispose()
        await broken.dispose()
    async with aiohttp.ClientSession() as http:
        status, _, _ = await send(http, running, token, requests_for(number)[1])
        assert status == 200


def test_a_bug_is_still_a_500_not_a_503() -> None:
    """Only the database not answering is a 503: a wrong query stays a bug."""
    import sqlite3

    from sqlalchemy.exc import OperationalError, ProgrammingError

    from sac_ivr.http.errors import database_unavailable

    assert not database_unavailable(ValueError("x"))
    assert not database_unavailable(KeyError("x"))
    assert not database_unavailable(
        OperationalError("SELECT nope", {}, sqlite3.OperationalError("no such column: nope"))
    )
    assert not database_unavailable(ProgrammingError("SELECT", {}, Exception("syntax")))
    assert database_unavailable(ConnectionRefusedError(111, "refused"))
    assert database_unavailable(
        OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
    )
