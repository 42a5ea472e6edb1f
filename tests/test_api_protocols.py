"""HTTP API of the protocols feature, health, tokens and the OpenAPI document."""

from __future__ import annotations

import aiohttp
import pytest

from sac_ivr.auth.services import create_token
from sac_ivr.http.app import create_app
from sac_ivr.http.openapi import build_openapi
from sac_ivr.runner import RunningService
from tests.fakeasterisk.agi import fake_call


def base(running: RunningService) -> str:
    return f"http://127.0.0.1:{running.http_port}"


async def get(running: RunningService, path: str, token: str | None = None, **params: str):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(base(running) + path, headers=headers, params=params) as response:
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body, await response.text()


async def new_call(running: RunningService, **headers: str) -> str:
    result = await fake_call("127.0.0.1", running.agi_port, **headers)
    return result.variables["SAC_PROTOCOL"]


async def test_public_lookup_shows_status_and_no_personal_data(running: RunningService) -> None:
    number = await new_call(running, callerid="11987654321", calleridname="Maria Silva")
    status, body, text = await get(running, f"/api/v1/protocols/{number}")
    assert status == 200
    assert body["number"] == number
    assert body["status"] == "open" and body["status_label"] == "Aberto"
    day = f"{number[:4]}-{number[4:6]}-{number[6:8]}"  # the local date in the number
    assert body["opened_on"] == body["updated_on"] == day
    assert "opened_at" not in body and "subject" not in body  # dates to the day only
    assert "987654321" not in text and "Maria" not in text


async def test_agent_lookup_shows_the_record_and_its_timeline(running: RunningService) -> None:
    token = await create_token(running.core.sessionmaker, "ana", "agent")
    number = await new_call(running, callerid="11987654321")
    status, body, _ = await get(running, f"/api/v1/protocols/{number}", token)
    assert status == 200
    assert body["caller_e164"] == "+5511987654321"
    assert [e["kind"] for e in body["events"]] == ["opened"]


@pytest.mark.parametrize(
    ("number", "fragment"),
    [
        ("20261122000001x", "digits only"),
        ("123", "15 to 18 digits"),
        ("9" * 70, "far too long"),
    ],
)
async def test_malformed_numbers_are_400_with_a_reason(
    running: RunningService, number: str, fragment: str
) -> None:
    status, body, _ = await get(running, f"/api/v1/protocols/{number}")
    assert status == 400
    assert body["error"]["code"] == "invalid_protocol_number"
    assert fragment in body["error"]["message"]


async def test_bad_check_digit_is_400_and_unknown_is_404(running: RunningService) -> None:
    number = await new_call(running)
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    status, body, _ = await get(running, f"/api/v1/protocols/{wrong}")
    assert status == 400 and "check digit" in body["error"]["message"]
    from stdnum import damm

    unknown_body = "20200101999999"
    status, body, _ = await get(
        running, f"/api/v1/protocols/{unknown_body}{damm.calc_check_digit(unknown_body)}"
    )
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_customer_listing_needs_a_token_and_filters_by_phone(
    running: RunningService,
) -> None:
    status, body, _ = await get(running, "/api/v1/protocols")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body, _ = await get(running, "/api/v1/protocols", "sac_not-a-real-token")
    assert status == 401
    token = await create_token(running.core.sessionmaker, "bruno", "agent")
    mine = [await new_call(running, callerid=c) for c in ("11987654321", "011987654321")]
    other = await new_call(running, callerid="21912345678")
    # The same customer typed in another format finds both, newest first.
    status, body, _ = await get(running, "/api/v1/protocols", token, phone="+55 (11) 98765-4321")
    assert status == 200
    assert [i["number"] for i in body["items"]] == mine[::-1]
    assert body["total"] == 2 and other not in [i["number"] for i in body["items"]]
    status, body, _ = await get(running, "/api/v1/protocols", token, limit="1", offset="1")
    assert body["total"] == 3 and len(body["items"]) == 1 and body["limit"] == 1
    status, body, _ = await get(running, "/api/v1/protocols", token, format="csv")
    assert status == 403  # a bulk export of customers is for supervisors
    supervisor = await create_token(running.core.sessionmaker, "sueli", "supervisor")
    status, _, text = await get(running, "/api/v1/protocols", supervisor, format="csv")
    assert status == 200 and text.splitlines()[0].startswith("number,status")
    assert len(text.strip().splitlines()) == 4


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"phone": "12"}, "phone"),
        ({"document": "111.111.111-12"}, "document"),
        ({"document": "1234"}, "document"),
        ({"limit": "0"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"format": "xml"}, "format"),
        ({"status": "'; drop table protocols; --"}, "status"),
    ],
)
async def test_wrong_input_in_listing_is_400_naming_the_field(
    running: RunningService, params: dict[str, str], field: str
) -> None:
    token = await create_token(running.core.sessionmaker, "carla", "agent")
    status, body, _ = await get(running, "/api/v1/protocols", token, **params)
    assert status == 400
    assert body["error"]["details"]["field"] == field


async def test_healthz_reports_the_database(running: RunningService, tmp_path) -> None:
    status, body, _ = await get(running, "/healthz")
    assert status == 200 and body["database"] == "ok"
    await running.core.engine.dispose()
    from sac_ivr.db.engine import create_engine

    # A directory where the database file should be: every connection fails.
    running.core.engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}")
    status, body, _ = await get(running, "/healthz")
    assert status == 503 and body["database"].startswith("unavailable")


async def test_unknown_path_is_a_json_404(running: RunningService) -> None:
    status, body, _ = await get(running, "/api/v1/nope")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_openapi_document_matches_the_served_routes(core) -> None:
    app = create_app(core)
    served = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if not path:
            continue
        for route in resource:
            if route.method not in ("HEAD", "OPTIONS"):
                served.add((route.method.lower(), path))
    documented = {
        (method, path)
        for path, operations in build_openapi()["paths"].items()
        for method in operations
    }
    assert served == documented
