"""GET /api/v1/calls, the "calls" section of a protocol, and the AMI starter."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterable
from typing import Any

import aiohttp
import pytest

from sac_ivr.auth.services import create_token
from sac_ivr.calls.runtime import CallsRuntime
from sac_ivr.calls.schemas import LIST_COLUMNS
from sac_ivr.calls.writer import CallLogWriter
from sac_ivr.config import ConfigError
from sac_ivr.core import Core
from sac_ivr.features import load_settings
from sac_ivr.runner import RunningService, start_service
from tests.calls_stack import ABANDONED, ANSWERED, MIDCALL
from tests.conftest import make_settings
from tests.fakeasterisk.agi import fake_call
from tests.fakeasterisk.ami import FakeAmi, load_trace, wait_until


async def store(core: Core, events: Iterable[dict[str, Any]]) -> None:
    """Put events through the call log writer, as the AMI side does."""
    writer = CallLogWriter(core.sessionmaker)
    await writer.start()
    for event in events:
        writer.feed(event)
    await writer.flush()
    await writer.close()


async def store_three_calls(running: RunningService) -> None:
    await store(
        running.core,
        load_trace("queue_answered.ami")
        + load_trace("queue_abandoned.ami")
        + load_trace("reconnect_before.ami"),
    )


async def get(running: RunningService, path: str, token: str | None = None, **params: str):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://127.0.0.1:{running.http_port}{path}"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers, params=params) as response:
            text = await response.text()
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body, text, response.content_type


async def agent_token(running: RunningService) -> str:
    return await create_token(running.core.sessionmaker, "ana", "agent")


async def test_the_call_log_needs_a_token(running: RunningService) -> None:
    status, body, _, _ = await get(running, "/api/v1/calls")
    assert status == 401 and body["error"]["code"] == "unauthorized"


async def test_calls_newest_first_with_paging(running: RunningService) -> None:
    await store_three_calls(running)
    token = await agent_token(running)
    status, body, _, _ = await get(running, "/api/v1/calls", token)
    assert status == 200
    assert [c["linkedid"] for c in body["items"]] == [MIDCALL, ABANDONED, ANSWERED]
    assert (body["total"], body["limit"], body["offset"]) == (3, 50, 0)
    answered = body["items"][2]
    assert answered["outcome"] == "answered" and answered["agent_name"] == "Maria Silva"
    assert answered["caller_masked"] == "*********4321"
    assert answered["started_at"] == "2024-11-22T12:53:20.100000+00:00"
    status, body, _, _ = await get(running, "/api/v1/calls", token, limit="1", offset="1")
    assert [c["linkedid"] for c in body["items"]] == [ABANDONED] and body["total"] == 3


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"phone": "(11) 98765-4321"}, [ANSWERED]),
        ({"phone": "+55 11 97654-3210"}, [MIDCALL]),
        ({"protocol": "202411220000197"}, [ABANDONED]),
        ({"agent": "Maria Silva"}, [ANSWERED]),
        ({"agent": "PJSIP/agent2"}, [MIDCALL]),
        ({"outcome": "abandoned"}, [ABANDONED]),
        ({"outcome": "in_progress"}, [MIDCALL]),
        ({"from": "2024-11-22T12:54:00Z"}, [MIDCALL, ABANDONED]),
        ({"from": "2024-11-22T12:54:00Z", "until": "2024-11-22T12:56:00Z"}, [ABANDONED]),
        ({"until": "2024-11-22"}, []),
        ({"phone": "11912345678"}, []),
    ],
)
async def test_filters(running: RunningService, params: dict[str, str], expected: list) -> None:
    await store_three_calls(running)
    token = await agent_token(running)
    status, body, _, _ = await get(running, "/api/v1/calls", token, **params)
    assert status == 200
    assert [c["linkedid"] for c in body["items"]] == expected
    assert body["total"] == len(expected)


async def test_csv_export(running: RunningService) -> None:
    await store_three_calls(running)
    status, _, _, _ = await get(running, "/api/v1/calls", await agent_token(running), format="csv")
    assert status == 403  # a bulk export is for supervisors
    token = await create_token(running.core.sessionmaker, "sueli", "supervisor")
    status, _, text, content_type = await get(running, "/api/v1/calls", token, format="csv")
    assert status == 200 and content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(LIST_COLUMNS)
    assert [r["linkedid"] for r in rows] == [MIDCALL, ABANDONED, ANSWERED]
    assert rows[2]["hangup_cause_text"] == "Normal Clearing"
    assert rows[2]["transfers"] == "[]" and rows[2]["reconciled"] == "False"
    assert rows[0]["ended_at"] == ""


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"until": "2024-13-45"}, "until"),
        ({"from": "2024-11-23", "until": "2024-11-22"}, "until"),
        ({"phone": "123"}, "phone"),
        ({"protocol": "20241122abc"}, "protocol"),
        ({"protocol": "9" * 41}, "protocol"),
        ({"agent": "x" * 200}, "agent"),
        ({"agent": "PJSIP/\x01"}, "agent"),
        ({"outcome": "lost"}, "outcome"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"format": "xml"}, "format"),
    ],
)
async def test_bad_input_is_400_json(
    running: RunningService, params: dict[str, str], field: str
) -> None:
    token = await agent_token(running)
    status, body, _, _ = await get(running, "/api/v1/calls", token, **params)
    assert status == 400
    assert body["error"]["details"]["field"] == field


async def test_a_protocol_shows_its_calls_to_agents_only(running: RunningService) -> None:
    uniqueid = "1732280000.1"
    result = await fake_call("127.0.0.1", running.agi_port, uniqueid=uniqueid)
    number = result.variables["SAC_PROTOCOL"]
    events = [
        {k: (v.replace("202411220000181", number)) for k, v in e.items()}
        for e in load_trace("queue_answered.ami")
    ]
    await store(running.core, events)
    token = await agent_token(running)
    status, body, _, _ = await get(running, f"/api/v1/protocols/{number}", token)
    assert status == 200
    assert [c["linkedid"] for c in body["calls"]] == [uniqueid]
    assert body["calls"][0]["protocol"] == number
    assert body["calls"][0]["agent_name"] == "Maria Silva"
    assert body["linkedid"] == uniqueid  # the protocol learnt its call
    status, public, text, _ = await get(running, f"/api/v1/protocols/{number}")
    assert status == 200 and "calls" not in public and "Maria" not in text


async def test_the_sections_other_features_add_to_a_protocol_are_documented(
    running: RunningService,
) -> None:
    """The call log's and the outbox's sections of a protocol's agent view are in the
    OpenAPI document, with the shapes of their own listings (schemathesis then checks
    the answers against them)."""
    status, doc, _, _ = await get(running, "/api/v1/openapi.json")
    assert status == 200
    schemas = doc["components"]["schemas"]
    calls = schemas["ProtocolAgent"]["properties"]["calls"]
    assert calls["type"] == "array"
    assert calls["items"] == {"$ref": "#/components/schemas/Call"}
    assert "linkedid" in schemas["Call"]["properties"]
    page = schemas["CallPage"]["properties"]["items"]["items"]
    assert page == {"$ref": "#/components/schemas/Call"}
    notifications = schemas["ProtocolAgent"]["properties"]["notifications"]
    assert notifications["items"] == {"$ref": "#/components/schemas/Notification"}


async def test_a_protocol_without_calls_has_an_empty_section(running: RunningService) -> None:
    number = (await fake_call("127.0.0.1", running.agi_port)).variables["SAC_PROTOCOL"]
    status, body, _, _ = await get(
        running, f"/api/v1/protocols/{number}", await agent_token(running)
    )
    assert status == 200 and body["calls"] == []


# -- the starter ------------------------------------------------------------------------
async def test_with_ami_disabled_nothing_connects(sqlite_url: str) -> None:
    fake = await FakeAmi().start()
    settings = make_settings(sqlite_url, ami_port=fake.port, ami_secret=fake.secret)
    service = await start_service(settings, migrate=False)
    try:
        await asyncio.sleep(0.2)
        assert service.core.live_calls is None
        assert fake.connections_made == 0
    finally:
        await service.stop(drain_seconds=1.0)
        await fake.close()


async def test_with_ami_enabled_the_service_follows_calls_and_closes_cleanly(
    db_url: str,
) -> None:
    fake = await FakeAmi().start()
    fake.queue_status = load_trace("queuestatus.ami")
    settings = make_settings(db_url, ami_enabled=True, ami_port=fake.port, ami_secret=fake.secret)
    service = await start_service(settings, migrate=False)
    try:
        feature = service.core.live_calls
        assert isinstance(feature, CallsRuntime)
        await wait_until(lambda: feature.syncs >= 1)
        assert feature.snapshot()["queues"]["sac-agents"]["members"]
        await fake.push_trace("queue_answered.ami")
        await feature.client.ping()
        await feature.writer.flush()
        token = await agent_token(service)
        status, body, _, _ = await get(service, "/api/v1/calls", token)
        assert status == 200 and [c["linkedid"] for c in body["items"]] == [ANSWERED]
    finally:
        await service.stop(drain_seconds=1.0)
    assert len(fake.actions_named("Logoff")) == 1
    assert not feature.client.connected
    await fake.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ami_enabled": "true"}, "ami_secret"),
        ({"ami_ping_interval": "0"}, "ami_ping_interval"),
        ({"ami_action_timeout": "-1"}, "ami_action_timeout"),
        ({"ami_reconnect_max": "99999"}, "ami_reconnect_max"),
        ({"ami_reconcile_interval": "-5"}, "ami_reconcile_interval"),
    ],
)
def test_bad_ami_settings_are_refused(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, overrides=overrides)
