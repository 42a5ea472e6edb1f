"""Forged writes from another origin on the same host, in a real Chromium.

The agent logs in on the service's origin (the SameSite=Strict cookie is set). Then
the same browser opens a page served by another small aiohttp server on another
127.0.0.1 port: the same *site*, so the cookie rides along. That page tries what
the issue describes (cancel a protocol, send the customer's history to an outside
address, change a protocol) with fetch (credentials: 'include', as text/plain and as
JSON) and with HTML form posts. Every attempt is refused (403, logged) or blocked by
the browser itself (the JSON ones need a CORS preflight, which the service never
grants), and the database is unchanged; the panel's own writes still work.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from sac_ivr.auth.services import create_token
from sac_ivr.history.tables import HistoryRequest
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.protocols.tables import Protocol
from sac_ivr.runner import RunningService
from tests.browser import Browser, login_panel
from tests.fakeasterisk.agi import fake_call
from tests.notify_fakes import wait_until

pytestmark = pytest.mark.chromium

ATTACK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>ofertas</title></head><body>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe><iframe name="sink3"></iframe>
<form id="f-cancel" method="POST" enctype="text/plain" target="sink1"
      action="{target}/api/v1/protocols/{number}/transitions">
  <input name='{{"to_status":"cancelled","customer_note":"' value='x"}}'>
</form>
<form id="f-history" method="POST" target="sink2"
      action="{target}/api/v1/history-requests">
  <input name="phone" value="11987654321"><input name="delivery" value="email">
  <input name="email" value="attacker@evil.example">
</form>
<form id="f-history-json" method="POST" enctype="text/plain" target="sink3"
      action="{target}/api/v1/history-requests">
  <input name='{{"phone":"11987654321","delivery":"email","email":"attacker@evil.example","x":"'
         value='"}}'>
</form>
<script>
const target = {target_js};
const number = {number_js};
window.results = {{}};
async function attempt(name, path, init) {{
  try {{
    const response = await fetch(target + path, {{credentials: "include", ...init}});
    window.results[name] = response.type === "opaque" ? "opaque" : String(response.status);
  }} catch (exc) {{
    window.results[name] = "blocked: " + exc.name;
  }}
}}
async function attack() {{
  const history = JSON.stringify(
    {{phone: "11987654321", delivery: "email", email: "attacker@evil.example"}});
  await Promise.all([
    attempt("cancel-text", `/api/v1/protocols/${{number}}/transitions`,
      {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
        body: JSON.stringify({{to_status: "cancelled"}})}}),
    attempt("history-text", "/api/v1/history-requests",
      {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
        body: history}}),
    attempt("history-noheader", "/api/v1/history-requests",
      {{method: "POST", mode: "no-cors", body: history}}),
    attempt("patch-text", `/api/v1/protocols/${{number}}`,
      {{method: "PATCH", headers: {{"Content-Type": "text/plain"}},
        body: JSON.stringify({{notes: "forged"}})}}),
    attempt("patch-json", `/api/v1/protocols/${{number}}`,
      {{method: "PATCH", headers: {{"Content-Type": "application/json"}},
        body: JSON.stringify({{notes: "forged"}})}}),
    attempt("cancel-json", `/api/v1/protocols/${{number}}/transitions`,
      {{method: "POST", headers: {{"Content-Type": "application/json"}},
        body: JSON.stringify({{to_status: "cancelled"}})}}),
    attempt("logout", "/api/v1/session", {{method: "DELETE", mode: "no-cors"}}),
  ]);
  document.getElementById("f-cancel").submit();
  document.getElementById("f-history").submit();
  document.getElementById("f-history-json").submit();
  window.results.done = true;
}}
attack();
</script></body></html>
"""

# The writes that reach the service (no preflight needed): each must be refused.
SIMPLE_WRITES = 6  # 3 no-cors POST fetches, 3 form posts


@pytest.fixture
async def attacker() -> AsyncIterator[dict]:
    """An aiohttp server on another 127.0.0.1 port; ``page`` is set by the test."""
    state: dict = {"page": ""}

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=state["page"], content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]
    yield state
    await runner.cleanup()


async def snapshot(running: RunningService, number: str) -> dict:
    async with running.core.sessionmaker() as session:
        protocol = await session.scalar(
            select(Protocol).where(Protocol.number == number).options(selectinload(Protocol.events))
        )
        assert protocol is not None
        return {
            "status": protocol.status,
            "notes": protocol.notes,
            "events": [e.kind for e in protocol.events],
            "history_requests": await session.scalar(
                select(func.count()).select_from(HistoryRequest)
            ),
            "emails": await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.channel == "email")
            ),
        }


async def test_forged_writes_from_another_port_are_refused_and_change_nothing(
    running_sqlite: RunningService,
    browser: Browser,
    attacker: dict,
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = running_sqlite
    service = f"http://127.0.0.1:{running.http_port}"
    call = await fake_call("127.0.0.1", running.agi_port, callerid="11987654321")
    number = call.variables["SAC_PROTOCOL"]
    token = await create_token(running.core.sessionmaker, "ana", "agent", "PJSIP/1001")
    await login_panel(browser, f"{service}/agent", token)
    before = await snapshot(running, number)
    assert before["status"] == "open" and before["history_requests"] == 0

    attacker["page"] = ATTACK_PAGE.format(
        target=service,
        number=number,
        target_js=json.dumps(service),
        number_js=json.dumps(number),
    )
    caplog.set_level(logging.WARNING, logger="sac_ivr.http.csrf")
    await browser.get(attacker["url"])
    results = await browser.wait_until(
        lambda d: d.execute_script(
            "return window.results && window.results.done && window.results"
        ),
        "the attack page did not finish",
    )

    def refusals() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "refused a browser write" in r.getMessage()]

    await wait_until(lambda: len(refusals()) >= SIMPLE_WRITES, what="every forged write refused")
    origins = {r.getMessage().split("(Origin ")[1].split(",")[0] for r in refusals()}
    assert origins == {attacker["url"].rstrip("/")}
    # The JSON writes and the PATCHes never left the browser (CORS preflight refused),
    # nor did the DELETE (not a method no-cors allows).
    for name in ("patch-text", "patch-json", "cancel-json", "logout"):
        assert results[name].startswith("blocked"), results
    assert await snapshot(running, number) == before

    # The session is intact and the panel's own writes (same origin, JSON) work.
    await browser.get(f"{service}/agent")
    await browser.wait_for("#app")
    status = await browser.js_async(
        """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: "PATCH", credentials: "same-origin",
          headers: {"Content-Type": "application/json"},
          body: JSON.stringify({notes: "retorno amanhã"})}).then(r => done(r.status));
        """,
        f"/api/v1/protocols/{number}",
    )
    assert status == 200
    assert (await snapshot(running, number))["notes"] == "retorno amanhã"


async def test_a_same_origin_form_or_text_post_is_refused_too(
    running_sqlite: RunningService, browser: Browser
) -> None:
    """Even from the service's own origin, a cookie-authenticated write must be JSON:
    text/plain is a 415 and changes nothing."""
    running = running_sqlite
    service = f"http://127.0.0.1:{running.http_port}"
    call = await fake_call("127.0.0.1", running.agi_port, callerid="11987654321")
    number = call.variables["SAC_PROTOCOL"]
    token = await create_token(running.core.sessionmaker, "ana", "agent", "PJSIP/1001")
    await login_panel(browser, f"{service}/agent", token)
    status = await browser.js_async(
        """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: "POST", credentials: "same-origin",
          headers: {"Content-Type": "text/plain"},
          body: JSON.stringify({to_status: "cancelled"})}).then(r => done(r.status));
        """,
        f"/api/v1/protocols/{number}/transitions",
    )
    assert status == 415
    assert (await snapshot(running, number))["status"] == "open"
