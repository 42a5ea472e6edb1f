"""The bad inputs of issue #8 against the real HTTP server: each is a 4xx with a JSON
error naming what was wrong, never a 500, and changes nothing. Plus the rest of the
input layer's promises over HTTP: strict JSON bodies, 405 with ``Allow``, a neutral
``Server`` header, and an OpenAPI document that states the limits the code enforces.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sac_ivr.auth.services import create_token
from sac_ivr.core import Core
from sac_ivr.features import create_app
from sac_ivr.http.openapi import build_openapi
from sac_ivr.protocols.tables import Protocol
from sac_ivr.runner import RunningService
from tests.fakeasterisk.agi import fake_call


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        return self.json()["error"]


async def raw_request(port: int, head: bytes, body: bytes = b"") -> Answer:
    """One HTTP/1.1 request written byte for byte (aiohttp's client would refuse
    some of these), the answer parsed by hand."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.rstrip(b"\r\n") + b"\r\n")
        writer.write(f"Host: 127.0.0.1:{port}\r\nConnection: close\r\n".encode())
        if body:
            writer.write(f"Content-Length: {len(body)}\r\n".encode())
        writer.write(b"\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head_part, _, payload = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, payload)


async def new_protocol(running: RunningService) -> str:
    result = await fake_call("127.0.0.1", running.agi_port, callerid="11987654321")
    return result.variables["SAC_PROTOCOL"]


async def notes_of(running: RunningService, number: str) -> str | None:
    from sqlalchemy import select

    async with running.core.sessionmaker() as session:
        return await session.scalar(select(Protocol.notes).where(Protocol.number == number))


def auth(token: str) -> bytes:
    return f"Authorization: Bearer {token}\r\n".encode()


JSON = b"Content-Type: application/json\r\n"
DEEP = b"[" * 100_000 + b"]" * 100_000


# (name, method, path, headers, body, status, field). The path may hold {number}; a
# supervisor's token is sent unless the headers say otherwise ("noauth").
ISSUE_CASES = [
    ("superscript two as limit", "GET", "/api/v1/protocols?limit=%C2%B2", b"", b"", 400, "limit"),
    ("Arabic-Indic 3 as limit", "GET", "/api/v1/protocols?limit=%D9%A3", b"", b"", 400, "limit"),
    ("Arabic-Indic offset", "GET", "/api/v1/calls?offset=%D9%A3", b"", b"", 400, "offset"),
    (
        "Arabic-Indic due_within_days",
        "GET",
        "/api/v1/protocols?due_within_days=%D9%A3",
        b"",
        b"",
        400,
        "due_within_days",
    ),
    ("deep JSON on PATCH", "PATCH", "/api/v1/protocols/{number}", JSON, DEEP, 400, "body"),
    (
        "deep JSON on login, no token",
        "POST",
        "/api/v1/session",
        b"noauth" + JSON,
        DEEP,
        400,
        "body",
    ),
    (
        "deep JSON on a history request",
        "POST",
        "/api/v1/history-requests",
        JSON,
        b'{"phone":' + b"[" * 5000 + b"]" * 5000 + b"}",
        400,
        "body",
    ),
    (
        "until=9999-12-31 on the reports",
        "GET",
        "/api/v1/reports/summary?until=9999-12-31",
        b"",
        b"",
        400,
        "until",
    ),
    (
        "until=9999-12-31 on a report table",
        "GET",
        "/api/v1/reports/pending?until=9999-12-31",
        b"",
        b"",
        400,
        "until",
    ),
    (
        "from=0001-01-01+14:00 on the calls",
        "GET",
        "/api/v1/calls?from=0001-01-01T00:00:00%2B14:00",
        b"",
        b"",
        400,
        "from",
    ),
    (
        "until=9999-12-31T23:59-12:00 on the calls",
        "GET",
        "/api/v1/calls?until=9999-12-31T23:59:59-12:00",
        b"",
        b"",
        400,
        "until",
    ),
    (
        "Arabic-Indic year on the reports",
        "GET",
        "/api/v1/reports/summary?from=%D9%A2%D9%A0%D9%A2%D9%A6-01-01",
        b"",
        b"",
        400,
        "from",
    ),
    (
        "lone surrogate in notes",
        "PATCH",
        "/api/v1/protocols/{number}",
        JSON,
        b'{"notes":"\\ud800"}',
        400,
        "notes",
    ),
    (
        "lone low surrogate in a name",
        "PATCH",
        "/api/v1/protocols/{number}",
        JSON,
        b'{"customer_name":"a\\udc00b"}',
        400,
        "customer_name",
    ),
    (
        "non-UTF-8 byte in Authorization",
        "GET",
        "/api/v1/protocols",
        b"noauth" + b"Authorization: Bearer sac_\xff\xfe\r\n",
        b"",
        400,
        "Authorization",
    ),
    (
        "non-UTF-8 byte in Authorization, public route",
        "GET",
        "/api/v1/protocols/{number}",
        b"noauth" + b"Authorization: Bearer \xc3\x28\r\n",
        b"",
        400,
        "Authorization",
    ),
    ("NUL in a static file name", "GET", "/panels/static/a%00b.js", b"noauth", b"", 400, "path"),
    (
        "static file name over 255 characters",
        "GET",
        "/panels/static/" + "a" * 300 + ".js",
        b"noauth",
        b"",
        404,
        None,
    ),
    (
        "static file folder name over 255 characters",
        "GET",
        "/panels/static/" + "b" * 300 + "/x.js",
        b"noauth",
        b"",
        404,
        None,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "field"),
    [case[1:] for case in ISSUE_CASES],
    ids=[case[0] for case in ISSUE_CASES],
)
async def test_the_issue_bad_inputs_are_4xx_naming_the_field(
    running: RunningService,
    method: str,
    path: str,
    headers: bytes,
    body: bytes,
    status: int,
    field: str | None,
) -> None:
    number = await new_protocol(running)
    token = await create_token(running.core.sessionmaker, "sofia", "supervisor")
    if headers.startswith(b"noauth"):
        headers = headers.removeprefix(b"noauth")
    else:
        headers = auth(token) + headers
    path = path.replace("{number}", number)
    head = f"{method} {path} HTTP/1.1\r\n".encode() + headers
    answer = await raw_request(running.http_port, head, body)
    assert answer.status == status, answer.body[:300]
    assert answer.headers["content-type"].startswith("application/json")
    if field is not None:
        assert answer.error["details"]["field"] == field
    assert await notes_of(running, number) is None  # nothing written


async def test_arabic_indic_and_superscript_digits_are_not_read_as_numbers(
    running: RunningService,
) -> None:
    """``٣`` used to be taken as 3: a page of 3. Now only 0-9 are digits."""
    token = await create_token(running.core.sessionmaker, "ana", "agent")
    for value in ("٣", "３", "²", "3\u200b", " 3", "+3", "3.0", "0x3"):
        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"http://127.0.0.1:{running.http_port}/api/v1/protocols",
                params={"limit": value},
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                assert r.status == 400, value
                assert (await r.json())["error"]["details"]["field"] == "limit"


JSON_BODY_CASES = [
    # (body bytes, content type, status, field)
    (b'{"notes": "a", "notes": "b"}', "application/json", 400, "body"),
    (b'{"notes": NaN}', "application/json", 400, "body"),
    (b'{"notes": 1e999}', "application/json", 400, "body"),
    (b'{"notes": ' + b"9" * 5000 + b"}", "application/json", 400, "body"),
    (b'{"notes": "caf\xe9"}', "application/json", 400, "body"),  # Latin-1, not UTF-8
    (b'["notes"]', "application/json", 400, "body"),
    (b'"notes"', "application/json", 400, "body"),
    (b"", "application/json", 400, "body"),
    (b'{"notes": "x"}', "text/plain", 415, None),
    (b'{"notes": "x"}', "application/x-www-form-urlencoded", 415, None),
    (b'{"notes": "x"}', "application/json; charset=latin-1", 415, None),
    (b'{"notes": "a\x00b"}', "application/json", 400, "body"),  # raw control in a string
    (b'{"notes": "a\\u0000b"}', "application/json", 400, "notes"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "field"), JSON_BODY_CASES)
async def test_json_bodies_are_read_strictly(
    running_sqlite: RunningService,
    body: bytes,
    content_type: str,
    status: int,
    field: str | None,
) -> None:
    running = running_sqlite
    number = await new_protocol(running)
    token = await create_token(running.core.sessionmaker, "ana", "agent")
    head = (
        f"PATCH /api/v1/protocols/{number} HTTP/1.1\r\nContent-Type: {content_type}\r\n".encode()
        + auth(token)
    )
    answer = await raw_request(running.http_port, head, body)
    assert answer.status == status, answer.body[:300]
    if field is not None:
        assert answer.error["details"]["field"] == field
    assert await notes_of(running, number) is None


async def test_a_body_over_the_size_cap_is_a_json_413(running_sqlite: RunningService) -> None:
    number = await new_protocol(running_sqlite)
    token = await create_token(running_sqlite.core.sessionmaker, "ana", "agent")
    body = json.dumps({"notes": "x" * (300 * 1024)}).encode()
    head = f"PATCH /api/v1/protocols/{number} HTTP/1.1\r\n".encode() + JSON + auth(token)
    answer = await raw_request(running_sqlite.http_port, head, body)
    assert answer.status == 413
    assert answer.error["code"] == "request_entity_too_large"


async def test_a_405_is_json_and_keeps_allow(running_sqlite: RunningService) -> None:
    for method, path, allowed in (
        ("PUT", "/api/v1/protocols", {"GET", "HEAD"}),
        ("DELETE", "/api/v1/lifecycle", {"GET", "HEAD"}),
        ("PUT", "/api/v1/session", {"GET", "HEAD", "POST", "DELETE"}),
    ):
        answer = await raw_request(running_sqlite.http_port, f"{method} {path} HTTP/1.1".encode())
        assert answer.status == 405, path
        assert set(answer.headers["allow"].split(",")) == allowed
        assert answer.error["code"] == "method_not_allowed"
        assert method in answer.error["message"]


async def test_the_server_header_names_no_version(running_sqlite: RunningService) -> None:
    heads = [f"GET {path} HTTP/1.1".encode() for path in ("/healthz", "/api/v1/nope", "/agent")]
    heads += [
        b"GET /panels/static/panel.css HTTP/1.1",
        b"PUT /api/v1/protocols HTTP/1.1",
        b"GET / HTTP/1.1\r\nBad Header",  # refused by aiohttp's parser, before any handler
        b"GARBAGE",
    ]
    for head in heads:
        answer = await raw_request(running_sqlite.http_port, head)
        assert answer.headers["server"] == "sac-ivr", head


# ------------------------------------------------ the document states the real limits


def _integer_query_limits(app: web.Application) -> list[tuple[str, str, str, int, int]]:
    """(method, path, parameter, minimum, maximum) of every integer query parameter."""
    out = []
    for path, operations in build_openapi(app)["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                schema = param.get("schema", {})
                if param["in"] == "query" and schema.get("type") == "integer":
                    out.append((method, path, param["name"], schema["minimum"], schema["maximum"]))
    return out


def _string_query_limits(app: web.Application) -> list[tuple[str, str, str, int]]:
    out = []
    for path, operations in build_openapi(app)["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                schema = param.get("schema", {})
                if param["in"] == "query" and "maxLength" in schema:
                    out.append((method, path, param["name"], schema["maxLength"]))
    return out


async def test_every_integer_query_parameter_states_its_range(core: Core) -> None:
    limits = _integer_query_limits(create_app(core))
    assert len(limits) >= 10
    reports = [m for m in limits if m[1] == "/api/v1/reports/{name}" and m[2] == "limit"]
    assert reports and reports[0][4] == 10000  # was documented as 1000


async def test_the_document_states_the_limits_the_code_enforces(
    running_sqlite: RunningService,
) -> None:
    """For each documented integer range: both ends accepted, one past each end a 400
    naming the parameter; for each documented maxLength, one past it a 400."""
    running = running_sqlite
    token = await create_token(running.core.sessionmaker, "root", "admin")
    number = await new_protocol(running)
    fill = {"{number}": number, "{name}": "pending", "{id}": "1"}
    checked = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:

        async def probe(method: str, path: str, params: dict[str, str]) -> tuple[int, dict]:
            for key, value in fill.items():
                path = path.replace(key, value)
            url = f"http://127.0.0.1:{running.http_port}{path}"
            async with http.request(method.upper(), url, params=params) as r:
                body = await r.json() if r.content_type == "application/json" else {}
                return r.status, body

        for method, path, name, low, high in _integer_query_limits(running.http.app):
            for value in (low, high):
                status, body = await probe(method, path, {name: str(value)})
                refused = body.get("error", {}).get("details", {}).get("field") == name
                assert status < 500 and not refused, (path, name, value, body)
            for value in (low - 1, high + 1):
                status, body = await probe(method, path, {name: str(value)})
                assert status == 400, (path, name, value)
                assert body["error"]["details"]["field"] == name
            checked += 1
        for method, path, name, max_length in _string_query_limits(running.http.app):
            status, body = await probe(method, path, {name: "1" * (max_length + 1)})
            assert status == 400, (path, name)
            assert body["error"]["details"]["field"] == name
            checked += 1
    assert checked >= 12
