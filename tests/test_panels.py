"""Panels over HTTP: session cookie, roles, the live snapshot and SSE stream, pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from sac_ivr.auth.services import Identity, create_token
from sac_ivr.config import ConfigError
from sac_ivr.core import Core
from sac_ivr.features import build_core, create_app
from sac_ivr.http.openapi import build_openapi
from sac_ivr.panels import schemas
from sac_ivr.panels.http import STATIC_DIR
from sac_ivr.runner import RunningService, start_service
from tests.conftest import make_settings
from tests.live_fakes import FakeTracker, SseReader, ago

AGENT_EXT = "PJSIP/1001"


class _AnyTime:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.endswith("Z") and "T" in other


ANY_TIME = _AnyTime()


def base(running: RunningService) -> str:
    return f"http://127.0.0.1:{running.http_port}"


async def tokens(core: Core) -> dict[str, str]:
    return {
        "ana": await create_token(core.sessionmaker, "ana", "agent", AGENT_EXT),
        "bruno": await create_token(core.sessionmaker, "bruno", "agent", "PJSIP/1002"),
        "sofia": await create_token(core.sessionmaker, "sofia", "supervisor"),
    }


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: keep cookies set by 127.0.0.1 (an IP host), as a browser does; and
    # say, as a browser does on the panel's own requests, that they are same-origin.
    jar = aiohttp.CookieJar(unsafe=True)
    headers = {"Sec-Fetch-Site": "same-origin"}
    async with aiohttp.ClientSession(cookie_jar=jar, headers=headers) as session:
        yield session


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ session


async def test_session_cookie_login_and_logout(
    running: RunningService, client: aiohttp.ClientSession
) -> None:
    tok = await tokens(running.core)
    url = base(running) + "/api/v1/session"
    async with client.get(url) as r:
        assert r.status == 401
    async with client.post(url, json={"token": tok["ana"]}) as r:
        assert r.status == 200
        assert await r.json() == {"name": "ana", "role": "agent", "extension": AGENT_EXT}
        cookie = r.headers["Set-Cookie"]
    # The cookie holds a session id, never the token itself.
    assert cookie.startswith("sac_session=sacs_") and tok["ana"] not in cookie
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on 127.0.0.1
    assert "Max-Age=43200" in cookie  # panels_session_hours = 12
    # The cookie now authenticates the browser everywhere, the live API included.
    async with client.get(url) as r:
        assert r.status == 200 and (await r.json())["name"] == "ana"
    async with client.get(base(running) + "/api/v1/live/snapshot") as r:
        assert r.status == 200
    async with client.delete(url) as r:
        assert r.status == 204
        assert "sac_session=" in r.headers["Set-Cookie"]
    async with client.get(url) as r:
        assert r.status == 401
    # Logging out ended the session on the server: a copy of the cookie is refused.
    async with aiohttp.ClientSession() as other:
        async with other.get(url, headers={"Cookie": f"sac_session={session_id}"}) as r:
            assert r.status == 401
    # The token itself still works for API clients.
    async with client.get(url, headers=bearer(tok["ana"])) as r:
        assert r.status == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"token": "sac_not-a-real-token"}, 401, "unauthorized"),
        ({"token": ""}, 400, "invalid_request"),
        ({"token": 12}, 400, "invalid_request"),
        ({"token": "sac_" + "x" * 300}, 400, "invalid_request"),
        (["sac_x"], 400, "invalid_request"),
        ('{"token": "sac_x', 400, "invalid_request"),
        # a cross-site form can post text/plain without a preflight: refused
        ({"text/plain": '{"token": "sac_x"}'}, 415, "unsupported_media_type"),
    ],
)
async def test_session_refuses_bad_tokens(
    running_sqlite: RunningService,
    client: aiohttp.ClientSession,
    body: object,
    status: int,
    code: str,
) -> None:
    url = base(running_sqlite) + "/api/v1/session"
    if isinstance(body, str):
        kwargs: dict = {"data": body, "headers": {"Content-Type": "application/json"}}
    elif isinstance(body, dict) and "text/plain" in body:
        kwargs = {"data": body["text/plain"], "headers": {"Content-Type": "text/plain"}}
    else:
        kwargs = {"json": body}
    async with client.post(url, **kwargs) as r:
        assert r.status == status
        assert (await r.json())["error"]["code"] == code
        assert "Set-Cookie" not in r.headers


async def test_cookie_of_a_revoked_token_is_refused(
    running_sqlite: RunningService, client: aiohttp.ClientSession
) -> None:
    from sqlalchemy import update

    from sac_ivr.auth.tables import ApiToken

    tok = await tokens(running_sqlite.core)
    url = base(running_sqlite) + "/api/v1/session"
    async with client.post(url, json={"token": tok["ana"]}) as r:
        assert r.status == 200
    async with running_sqlite.core.sessionmaker() as session, session.begin():
        await session.execute(
            update(ApiToken).where(ApiToken.name == "ana").values(revoked_at=datetime.now(UTC))
        )
    async with client.get(base(running_sqlite) + "/api/v1/live/events") as r:
        assert r.status == 401


# -------------------------------------------------------------------- roles


async def test_live_endpoints_need_a_token(
    running_sqlite: RunningService, client: aiohttp.ClientSession
) -> None:
    for path in ("/api/v1/live/events", "/api/v1/live/snapshot"):
        async with client.get(base(running_sqlite) + path) as r:
            assert r.status == 401, path
            assert (await r.json())["error"]["code"] == "unauthorized"
        async with client.get(base(running_sqlite) + path, headers=bearer("sac_nope")) as r:
            assert r.status == 401, path


def live_call(linkedid: str, state: str, agent: str | None = None, **extra: object) -> dict:
    call: dict = {
        "linkedid": linkedid,
        "protocol": f"2026112200000{linkedid[-1]}",
        "caller": "11987654321",
        "caller_e164": "+5511987654321",
        "queue": "sac-agents",
        "state": state,
        "entered_queue_at": ago(30) if state != "ivr" else None,
        "answered_at": ago(10) if state == "connected" else None,
        "agent": agent,
        "agent_name": {"PJSIP/1001": "Ana", "PJSIP/1002": "Bruno"}.get(agent or ""),
        "channel": f"PJSIP/trunk-{linkedid}",
    }
    call.update(extra)
    return call


def populated(tracker: FakeTracker) -> None:
    """Ana's phone rings (L2), Bruno talks (L3), L1 waits, L4 is still in the menu."""
    tracker.add_member("sac-agents", AGENT_EXT, "Ana", "busy")
    tracker.add_member("sac-agents", "PJSIP/1002", "Bruno", "busy", calls_taken=7)
    tracker.add_member("sac-agents", "PJSIP/1003", "Carla", "paused", paused_reason="almoço")
    tracker.add_member("sac-agents", "PJSIP/1004", "Davi", "available")
    tracker.enter_queue("L1", "202611220000017", "+5511911112222", waited_s=30)
    tracker.enter_queue("L2", "202611220000025", "+5511987654321", waited_s=20)
    tracker.ring("L2", AGENT_EXT)
    tracker.enter_queue("L3", "202611220000033", "+5521987654321", waited_s=50)
    tracker.connect("L3", "PJSIP/1002", "Bruno")
    tracker.calls.append({**live_call("L4", "ivr"), "queue": None})


async def test_agent_sees_own_calls_and_the_queue_only(
    running_sqlite: RunningService, client: aiohttp.ClientSession
) -> None:
    tok = await tokens(running_sqlite.core)
    populated(FakeTracker.install(running_sqlite.core))
    url = base(running_sqlite) + "/api/v1/live/snapshot"
    async with client.get(url, headers=bearer(tok["ana"])) as r:
        assert r.status == 200
        snap = await r.json()
    assert snap["ami"] is True
    assert snap["viewer"] == {"name": "ana", "role": "agent", "extension": AGENT_EXT}
    calls = {c["linkedid"]: c for c in snap["calls"]}
    assert snap["ami_connected"] is True
    assert set(calls) == {"L1", "L2"}  # not Bruno's call, not the one still in the menu
    assert calls["L2"]["mine"] is True and calls["L2"]["caller"] == "+5511987654321"
    assert calls["L2"]["agent"] == AGENT_EXT
    assert calls["L1"]["mine"] is False
    assert calls["L1"]["caller"] == "*********2222" and calls["L1"]["caller_masked"] is True
    assert calls["L1"]["caller_e164"] is None and calls["L1"]["agent"] is None
    assert "channel" not in calls["L1"]
    (queue,) = snap["queues"]
    # L2 rings on Ana's phone but its caller still waits in the queue
    assert queue["waiting"] == 2 and queue["me"] == "busy" and "members" not in queue
    assert queue["agents"] == {"available": 1, "busy": 2, "paused": 1, "unavailable": 0}
    assert queue["oldest_entered_at"] == calls["L1"]["entered_queue_at"]
    # Bruno sees his connected call, and L2 as a caller still waiting (not whose phone rings).
    async with client.get(url, headers=bearer(tok["bruno"])) as r:
        calls = {c["linkedid"]: c for c in (await r.json())["calls"]}
    assert set(calls) == {"L1", "L2", "L3"}
    assert calls["L3"]["mine"] is True and calls["L3"]["caller"] == "+5521987654321"
    assert calls["L2"]["mine"] is False and calls["L2"]["agent"] is None
    assert calls["L2"]["caller_masked"] is True
    # The supervisor view: everything, callers in full, and the members.
    async with client.get(url, params={"view": "supervisor"}, headers=bearer(tok["sofia"])) as r:
        snap = await r.json()
    assert snap["view"] == "supervisor"
    calls = {c["linkedid"]: c for c in snap["calls"]}
    assert set(calls) == {"L1", "L2", "L3", "L4"}
    assert calls["L1"]["caller"] == "+5511911112222" and calls["L1"]["caller_masked"] is False
    assert calls["L3"]["agent_name"] == "Bruno" and calls["L3"]["channel"] == "PJSIP/trunk-L3"
    assert calls["L2"]["ringing"] == [AGENT_EXT]
    members = {m["name"]: m for m in snap["queues"][0]["members"]}
    assert list(members) == ["Ana", "Bruno", "Carla", "Davi"]
    assert members["Carla"]["paused_reason"] == "almoço"
    assert members["Bruno"]["calls_taken"] == 7


async def test_supervisor_view_needs_the_supervisor_role(
    running_sqlite: RunningService, client: aiohttp.ClientSession
) -> None:
    tok = await tokens(running_sqlite.core)
    populated(FakeTracker.install(running_sqlite.core))
    for path in ("/api/v1/live/snapshot", "/api/v1/live/events"):
        url = base(running_sqlite) + path
        async with client.get(url, params={"view": "supervisor"}, headers=bearer(tok["ana"])) as r:
            assert r.status == 403, path
            assert (await r.json())["error"]["code"] == "forbidden"
        async with client.get(url, params={"view": "everything"}, headers=bearer(tok["ana"])) as r:
            assert r.status == 400, path
    # A supervisor on the agent panel gets the agent view (their extension: none).
    url = base(running_sqlite) + "/api/v1/live/snapshot"
    async with client.get(url, headers=bearer(tok["sofia"])) as r:
        snap = await r.json()
    assert snap["view"] == "agent" and {c["linkedid"] for c in snap["calls"]} == {"L1", "L2"}
    assert not any(c["mine"] for c in snap["calls"])
    # The page itself is plain HTML for anyone; it asks for a token.
    async with client.get(base(running_sqlite) + "/supervisor") as r:
        assert r.status == 200 and "Supervisão" in await r.text()


# ---------------------------------------------------------------------- SSE


async def test_sse_sends_snapshot_then_changes(
    running_sqlite: RunningService, client: aiohttp.ClientSession
) -> None:
    core = running_sqlite.core
    tok = await tokens(core)
    tracker = FakeTracker.install(core)
    tracker.add_member("sac-agents", AGENT_EXT, "Ana")
    url = base(running_sqlite) + "/api/v1/live/events"
    async with client.get(url, headers=bearer(tok["ana"])) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers["Cache-Control"].startswith("no-cache")
        sse = SseReader(r)
        event, snap = await sse.next()
        assert sse.retry == 3000
        assert event == "snapshot"
        assert snap["calls"] == [] and snap["max_wait_s"] == 60
        assert snap["queues"][0]["name"] == "sac-agents" and snap["queues"][0]["waiting"] == 0

        tracker.enter_queue("1732280000.1", "202611220000017", "+5511987654321")
        event, data = await sse.next()
        assert event == "call"
        assert data["call"]["state"] == "queued" and data["call"]["caller_masked"] is True
        assert data["call"]["protocol"] == "202611220000017"
        event, data = await sse.next()
        assert (event, data["queue"]["waiting"]) == ("queue", 1)
        assert data["queue"]["oldest_entered_at"].endswith("Z")

        tracker.ring("1732280000.1", AGENT_EXT)
        event, data = await sse.next()
        assert event == "call" and data["call"]["state"] == "ringing"
        assert data["call"]["mine"] is True and data["call"]["caller"] == "+5511987654321"

        tracker.connect("1732280000.1", AGENT_EXT, "Ana")
        event, data = await sse.next()
        assert event == "call" and data["call"]["answered_at"] is not None
        assert data["call"]["agent_name"] == "Ana"
        event, data = await sse.next()
        assert (event, data["queue"]["waiting"]) == ("queue", 0)

        tracker.hangup("1732280000.1")
        event, data = await sse.next()
        assert (event, data["linkedid"]) == ("call_removed", "1732280000.1")


async def test_sse_hides_other_agents_calls(
    running_sqlite: RunningService, client: aiohttp.ClientSession
) -> None:
    core = running_sqlite.core
    tok = await tokens(core)
    tracker = FakeTracker.install(core)
    url = base(running_sqlite) + "/api/v1/live/events"
    async with client.get(url, headers=bearer(tok["bruno"])) as r:
        sse = SseReader(r)
        assert (await sse.next())[0] == "snapshot"
        tracker.enter_queue("L9", "202611220000090", "+5511987654321")
        assert (await sse.next())[1]["call"]["linkedid"] == "L9"
        assert (await sse.next())[0] == "queue"
        # Ringing on Ana's phone: for Bruno the caller still waits, nothing about Ana.
        tracker.ring("L9", AGENT_EXT)
        event, data = await sse.next()
        assert event == "call" and data["call"]["state"] == "ringing"
        assert data["call"]["mine"] is False and data["call"]["agent"] is None
        assert data["call"]["agent_name"] is None and data["call"]["caller_masked"] is True
        # Ana answers: the call leaves Bruno's view.
        tracker.connect("L9", AGENT_EXT, "Ana")
        event, data = await sse.next()
        assert (event, data["linkedid"]) == ("call_removed", "L9")


async def test_ring_all_queue_pops_on_every_phone_rung(
    running_sqlite: RunningService, client: aiohttp.ClientSession
) -> None:
    core = running_sqlite.core
    tok = await tokens(core)
    tracker = FakeTracker.install(core)
    url = base(running_sqlite) + "/api/v1/live/events"
    async with (
        client.get(url, headers=bearer(tok["ana"])) as ana,
        client.get(url, headers=bearer(tok["bruno"])) as bruno,
    ):
        streams = [SseReader(ana), SseReader(bruno)]
        for sse in streams:
            assert (await sse.next())[0] == "snapshot"
        tracker.enter_queue("L7", "202611220000074", "+5511987654321")
        for sse in streams:
            assert (await sse.next())[0] == "call"  # queued
            assert (await sse.next())[0] == "queue"
        tracker.ring("L7", "PJSIP/1002", AGENT_EXT)
        for sse in streams:
            event, data = await sse.next()
            assert event == "call" and data["call"]["state"] == "ringing"
            assert data["call"]["mine"] is True and data["call"]["caller"] == "+5511987654321"


async def test_sse_tells_when_the_ami_link_drops(
    running_sqlite: RunningService, client: aiohttp.ClientSession
) -> None:
    tok = await tokens(running_sqlite.core)
    tracker = FakeTracker.install(running_sqlite.core)
    url = base(running_sqlite) + "/api/v1/live/events"
    async with client.get(url, headers=bearer(tok["ana"])) as r:
        sse = SseReader(r)
        event, snap = await sse.next()
        assert event == "snapshot"
        assert snap["ami"] is True and snap["ami_connected"] is True
        tracker.set_link(False)
        assert await sse.next() == ("link", {"server_time": ANY_TIME, "ami_connected": False})
        tracker.set_link(True)
        assert (await sse.next())[1]["ami_connected"] is True


async def test_real_call_tracker_feeds_the_agent_stream(
    running_sqlite: RunningService, client: aiohttp.ClientSession
) -> None:
    """The tracker built on AMI events (sac_ivr/calls/tracker.py), end to end."""
    tracker_module = pytest.importorskip("sac_ivr.calls.tracker")
    core = running_sqlite.core
    tok = await tokens(core)
    tracker = tracker_module.CallTracker(core.live.publish)
    tracker.set_link(True)
    core.live_calls = tracker
    lid = "1732280000.42"
    caller = {"Uniqueid": lid, "Linkedid": lid, "Channel": "PJSIP/trunk-0000002a"}
    agent_leg = {"DestUniqueid": "1732280000.43", "DestLinkedid": lid}
    url = base(running_sqlite) + "/api/v1/live/events"
    async with client.get(url, headers=bearer(tok["ana"])) as r:
        sse = SseReader(r)
        assert (await sse.next())[0] == "snapshot"
        tracker.handle_event(
            {"Event": "QueueMemberAdded", "Queue": "sac-agents", "Interface": AGENT_EXT,
             "MemberName": "Ana", "Status": "1", "Paused": "0", "InCall": "0"}
        )  # fmt: skip
        event, data = await sse.next()
        assert event == "queue" and data["queue"]["me"] == "available"
        tracker.handle_event({"Event": "Newchannel", **caller, "CallerIDNum": "11987654321"})
        tracker.handle_event(
            {"Event": "VarSet", **caller, "Variable": "SAC_PROTOCOL", "Value": "202611220000421"}
        )
        tracker.handle_event({"Event": "QueueCallerJoin", **caller, "Queue": "sac-agents"})
        event, data = await sse.next()
        assert event == "call" and data["call"]["state"] == "queued"
        assert data["call"]["protocol"] == "202611220000421"
        assert data["call"]["caller"] == "*********4321"  # masked: not Ana's call (yet)
        assert (await sse.next())[1]["queue"]["waiting"] == 1
        tracker.handle_event(
            {"Event": "AgentCalled", **caller, **agent_leg, "Queue": "sac-agents",
             "Interface": AGENT_EXT, "MemberName": "Ana"}
        )  # fmt: skip
        event, data = await sse.next()
        assert event == "call" and data["call"]["state"] == "ringing"
        assert data["call"]["mine"] is True and data["call"]["caller"] == "+5511987654321"
        tracker.handle_event(
            {"Event": "AgentConnect", **caller, **agent_leg, "Queue": "sac-agents",
             "Interface": AGENT_EXT, "MemberName": "Ana", "HoldTime": "7"}
        )  # fmt: skip
        event, data = await sse.next()
        assert event == "call" and data["call"]["state"] == "connected"
        assert data["call"]["agent_name"] == "Ana" and data["call"]["answered_at"]
        assert (await sse.next())[1]["queue"]["waiting"] == 0
        tracker.handle_event({"Event": "Hangup", **caller})
        removed = {"server_time": ANY_TIME, "server": "default", "linkedid": lid}
        assert await sse.next() == ("call_removed", removed)


async def test_sse_heartbeat_and_empty_snapshot_without_ami(
    sqlite_url: str, client: aiohttp.ClientSession
) -> None:
    running = await start_service(make_settings(sqlite_url, panels_heartbeat_s=1.0), migrate=False)
    try:
        tok = await tokens(running.core)
        url = base(running) + "/api/v1/live/events?view=supervisor"
        async with client.get(url, headers=bearer(tok["sofia"])) as r:
            sse = SseReader(r)
            event, snap = await sse.next()
            assert event == "snapshot"
            assert snap["ami"] is False and snap["calls"] == [] and snap["queues"] == []
            # Events without a tracker change nothing: the next message is a heartbeat.
            running.core.live.publish({"type": "call", "linkedid": "x"})
            event, data = await sse.next(skip=())
            assert event == "heartbeat" and data["server_time"].endswith("Z")
    finally:
        await running.stop(drain_seconds=1.0)


async def test_tracker_failure_keeps_the_stream(
    running_sqlite: RunningService, client: aiohttp.ClientSession
) -> None:
    core = running_sqlite.core
    tok = await tokens(core)
    tracker = FakeTracker.install(core)
    url = base(running_sqlite) + "/api/v1/live/events?view=supervisor"
    async with client.get(url, headers=bearer(tok["sofia"])) as r:
        sse = SseReader(r)
        assert (await sse.next())[0] == "snapshot"
        broken = tracker.snapshot
        tracker.snapshot = lambda: 1 / 0  # type: ignore[method-assign]
        tracker.publish({"type": "call"})
        tracker.snapshot = broken  # type: ignore[method-assign]
        tracker.enter_queue("L5", "202611220000050", "+5511987654321")
        event, data = await sse.next()
        assert event == "call" and data["call"]["linkedid"] == "L5"


async def test_shutdown_ends_open_streams_cleanly(
    sqlite_url: str, client: aiohttp.ClientSession
) -> None:
    running = await start_service(make_settings(sqlite_url), migrate=False)
    tok = await tokens(running.core)
    r = await client.get(base(running) + "/api/v1/live/events", headers=bearer(tok["ana"]))
    sse = SseReader(r)
    assert (await sse.next())[0] == "snapshot"
    assert running.core.live.subscriber_count == 1
    await running.stop(drain_seconds=1.0)
    # The handler returned (final chunk sent) instead of being cut off.
    with pytest.raises(EOFError):
        await sse.next()
    assert running.core.live.subscriber_count == 0
    r.release()


# -------------------------------------------------------------------- pages


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/agent", "Painel do atendente"),
        ("/agent/calls/202611220000017", "Painel do atendente"),
        ("/supervisor", "Supervisão"),
    ],
)
async def test_pages_are_served_with_a_strict_policy(
    running_sqlite: RunningService, client: aiohttp.ClientSession, path: str, marker: str
) -> None:
    async with client.get(base(running_sqlite) + path) as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        assert marker in await r.text()
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["Cache-Control"] == "no-store"


async def test_static_files_and_traversal(
    running_sqlite: RunningService, client: aiohttp.ClientSession
) -> None:
    url = base(running_sqlite) + "/panels/static/"
    async with client.get(url + "js/agent.js") as r:
        assert r.status == 200 and r.content_type == "text/javascript"
        assert "openProtocol" in await r.text()
    async with client.get(url + "panel.css") as r:
        assert r.status == 200 and r.content_type == "text/css"
    for bad in ("missing.js", "%2e%2e/http.py", "..%2fhttp.py", "js/..%2f..%2fhttp.py", "agent"):
        async with client.get(url + bad) as r:
            assert r.status == 404, bad
            assert (await r.json())["error"]["code"] == "not_found"


def test_every_static_file_the_pages_load_exists() -> None:
    import re

    for page in ("agent.html", "supervisor.html"):
        html = (STATIC_DIR / page).read_text(encoding="utf-8")
        refs = re.findall(r'(?:src|href)="/panels/static/([^"]+)"', html)
        assert refs, page
        for ref in refs:
            assert (STATIC_DIR / ref).is_file(), ref
        assert "<script>" not in html and "style=" not in html  # the CSP forbids inline
    for module in (STATIC_DIR / "js").glob("*.js"):
        for ref in re.findall(r'from "\./([^"]+)"', module.read_text(encoding="utf-8")):
            assert (STATIC_DIR / "js" / ref).is_file(), f"{module.name} imports {ref}"


def test_panels_routes_are_documented(sqlite_url: str) -> None:
    core = build_core(make_settings(sqlite_url))
    app = create_app(core)
    served = {
        (r.resource.canonical, r.method.lower())
        for r in app.router.routes()
        if r.method != "HEAD" and r.handler.__module__ == "sac_ivr.panels.http"
    }
    doc = build_openapi(app)
    documented = {
        (path, method)
        for path, ops in doc["paths"].items()
        for method in ops
        if path.startswith(("/agent", "/supervisor", "/panels/", "/api/v1/session", "/api/v1/live"))
    }
    assert served == documented
    assert "LiveSnapshot" in doc["components"]["schemas"]


# ----------------------------------------------------------------- settings


def test_wait_limit_setting(sqlite_url: str) -> None:
    assert make_settings(sqlite_url).panels_max_wait_s == 60
    assert make_settings(sqlite_url, panels_max_wait_s="45").panels_max_wait_s == 45
    for bad in (0, 5000):
        with pytest.raises(ConfigError, match="panels_max_wait_s"):
            make_settings(sqlite_url, panels_max_wait_s=bad)
    with pytest.raises(ConfigError, match="panels_heartbeat_s"):
        make_settings(sqlite_url, panels_heartbeat_s=0)


async def test_snapshot_carries_the_configured_limit(
    sqlite_url: str, client: aiohttp.ClientSession
) -> None:
    running = await start_service(make_settings(sqlite_url, panels_max_wait_s=45), migrate=False)
    try:
        tok = await tokens(running.core)
        async with client.get(
            base(running) + "/api/v1/live/snapshot", headers=bearer(tok["ana"])
        ) as r:
            assert (await r.json())["max_wait_s"] == 45
    finally:
        await running.stop(drain_seconds=1.0)


# -------------------------------------------------------------- view rules


def opts(
    extension: str | None = AGENT_EXT, supervisor: bool = False, mask: bool = True
) -> schemas.ViewOptions:
    role = "supervisor" if supervisor else "agent"
    return schemas.ViewOptions.of(Identity("x", role, extension), role, mask)


def test_unmasked_queue_when_configured() -> None:
    snapshot = {"calls": [live_call("L1", "queued")], "queues": {}}
    calls, _ = schemas.live_view(snapshot, opts(mask=False), datetime.now(UTC))
    call = calls["default/L1"]  # keyed by server and linkedid
    assert call["caller"] == "+5511987654321" and call["caller_masked"] is False


def test_agent_without_extension_sees_only_the_queue() -> None:
    snapshot = {
        "calls": [
            live_call("L1", "queued"),
            live_call("L2", "ringing", None),
            live_call("L3", "connected", None),
        ]
    }
    calls, _ = schemas.live_view(snapshot, opts(extension=None), datetime.now(UTC))
    assert set(calls) == {"default/L1", "default/L2"}  # keyed by server and linkedid
    assert not any(c["mine"] for c in calls.values())


def test_agent_sees_only_the_queues_they_serve() -> None:
    snapshot = {
        "calls": [
            live_call("L1", "queued", queue="sac-agents"),
            live_call("L2", "queued", queue="vip"),
        ],
        "queues": {
            "sac-agents": {"members": [{"interface": "pjsip/1001", "status": "available"}]},
            "vip": {"members": [{"interface": "PJSIP/2001", "status": "available"}]},
        },
    }
    calls, queues = schemas.live_view(snapshot, opts(), datetime.now(UTC))
    assert set(calls) == {"default/L1"} and set(queues) == {"sac-agents"}
    assert queues["sac-agents"]["me"] == "available"  # interface compared case-insensitively
    calls, queues = schemas.live_view(snapshot, opts(supervisor=True), datetime.now(UTC))
    assert set(calls) == {"default/L1", "default/L2"} and set(queues) == {"sac-agents", "vip"}


def test_timestamps_in_any_tracker_form() -> None:
    moment = datetime(2026, 11, 22, 15, 0, 1, 250000, tzinfo=UTC)
    expected = "2026-11-22T15:00:01.250Z"
    assert schemas.iso_utc(moment) == expected
    assert schemas.iso_utc(moment.timestamp()) == expected
    assert schemas.iso_utc("2026-11-22T12:00:01.25-03:00") == expected
    assert schemas.iso_utc("2026-11-22T15:00:01.250") == expected  # naive = UTC
    for junk in (None, "", "yesterday", float("nan"), True, [], 1e20):
        assert schemas.iso_utc(junk) is None


def test_malformed_tracker_entries_are_skipped() -> None:
    snapshot = {
        "calls": [
            {"state": "queued"},  # no linkedid
            {"linkedid": "L1", "state": "parked"},  # unknown state
            "garbage",
            live_call("L2", "queued", entered_queue_at="not a time"),
        ],
        "queues": {"sac-agents": {"members": ["x", {"status": "dancing"}], "waiting": ["L2"]}},
    }
    calls, queues = schemas.live_view(snapshot, opts(supervisor=True), datetime.now(UTC))
    assert set(calls) == {"default/L2"} and calls["default/L2"]["entered_queue_at"] is None
    assert queues["sac-agents"]["agents"]["unavailable"] == 1
    assert queues["sac-agents"]["waiting"] == 1


def test_queue_oldest_wait_falls_back_on_longest_wait() -> None:
    now = datetime(2026, 11, 22, 15, 0, 30, 400000, tzinfo=UTC)
    snapshot = {"queues": {"q": {"waiting": ["a", "b"], "longest_wait_s": 30}}}
    _, queues = schemas.live_view(snapshot, opts(supervisor=True), now)
    assert queues["q"]["waiting"] == 2
    assert queues["q"]["oldest_entered_at"] == "2026-11-22T15:00:00.000Z"


# ----------------------------------------------- the write API, as the panel calls it


async def test_panel_session_writes_and_the_server_checks_documents(
    running_sqlite: RunningService, client: aiohttp.ClientSession
) -> None:
    """The panel's PATCH rides on the session cookie; a CPF with wrong check digits
    is refused by the server too (the page checks first, the server decides)."""
    from tests.fakeasterisk.agi import fake_call

    call = await fake_call("127.0.0.1", running_sqlite.agi_port, uniqueid="1700000099.1")
    number = call.variables["SAC_PROTOCOL"]
    tok = await tokens(running_sqlite.core)
    api = base(running_sqlite) + "/api/v1"
    async with client.post(api + "/session", json={"token": tok["ana"]}) as r:
        assert r.status == 200
    async with client.get(api + "/lifecycle") as r:
        assert r.status == 200
        lifecycle = await r.json()
    assert {"statuses", "transitions", "subjects", "departments"} <= set(lifecycle)
    url = f"{api}/protocols/{number}"
    async with client.patch(url, json={"customer_document": "529.982.247-24"}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["details"]["field"] == "customer_document"
    async with client.patch(url, json={"customer_document": "529.982.247-25"}) as r:
        assert r.status == 200
        body = await r.json()
    assert body["customer_document"] == "52998224725"
    assert body["events"][-1]["actor"] == "ana"
    async with client.delete(api + "/session") as r:
        assert r.status == 204
    async with client.patch(url, json={"notes": "x"}) as r:
        assert r.status == 401
