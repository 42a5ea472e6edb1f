"""The supervisor view in a real headless Chromium, fed by the real calls runtime
following two fake Asterisk servers: a call with the same linkedid on both is two
calls, each with its server in the "Servidor" column."""

from __future__ import annotations

import pytest

from sac_ivr.auth.services import create_token
from sac_ivr.calls.runtime import CallsRuntime
from sac_ivr.runner import start_service
from tests.browser import EXPECTED_HTTP_ERRORS, Browser, login_panel
from tests.calls_stack import MIDCALL
from tests.conftest import make_settings
from tests.fakeasterisk.ami import FakeAmi, load_trace, wait_until

pytestmark = pytest.mark.chromium


async def test_supervisor_sees_the_server_of_each_call(sqlite_url: str, browser: Browser) -> None:
    east, west = await FakeAmi().start(), await FakeAmi().start()
    for fake in (east, west):
        fake.queue_status = load_trace("queuestatus.ami")
    settings = make_settings(
        sqlite_url,
        ami_enabled=True,
        ami_servers=[f"east=127.0.0.1:{east.port}", f"west=127.0.0.1:{west.port}"],
        ami_secret=east.secret,
        ami_reconcile_interval=0,
    )
    running = await start_service(settings, migrate=False)
    try:
        runtime = running.core.live_calls
        assert isinstance(runtime, CallsRuntime)
        await wait_until(lambda: all(s.synced for s in runtime.servers), 10.0, "following")
        for fake in (east, west):  # the same call (same linkedid) on both servers
            await fake.push_trace("reconnect_before.ami")
        await wait_until(lambda: len(runtime.snapshot()["calls"]) == 2, 10.0, "two live calls")
        token = await create_token(running.core.sessionmaker, "sofia", "supervisor")
        await login_panel(browser, f"http://127.0.0.1:{running.http_port}/supervisor", token)
        await browser.wait_for("#live-status[data-state=live]")
        header = "return document.querySelector('#active-table thead').textContent"
        assert "Servidor" in await browser.js(header)
        await browser.wait_for("#active", text="east")
        await browser.wait_for("#active", text="west")
        rows = await browser.js("return document.querySelectorAll('#active tr').length")
        assert rows == 2
        await browser.screenshot("supervisor-two-servers")
        # One server's call ends: only that row goes (calls are keyed by server too)
        east.channels = []
        await runtime.server("east").reconcile()
        await browser.wait_for("#active-count", text="1")
        assert "west" in await browser.text("#active")
        assert "east" not in await browser.text("#active")
        assert [c["server"] for c in runtime.snapshot()["calls"]] == ["west"]
        assert runtime.snapshot()["calls"][0]["linkedid"] == MIDCALL
        assert await browser.console_errors(ignore=EXPECTED_HTTP_ERRORS) == []
        await browser.get("about:blank")
    finally:
        await running.stop(drain_seconds=1.0)
        await east.close()
        await west.close()
