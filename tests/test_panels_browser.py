"""The panels in a real headless Chromium: login, live updates, screen pop, actions.

Live call state comes from a FakeTracker (the real-Asterisk suite drives the same
pages with real calls); protocols are issued by fake Asterisk calls over FastAGI.
Screenshots land in test-artifacts/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from sac_ivr.auth.services import create_token
from sac_ivr.customers import InvalidDocument, normalize_document
from sac_ivr.protocols.tables import Protocol
from sac_ivr.runner import RunningService, start_service
from tests.browser import EXPECTED_HTTP_ERRORS, Browser, login_panel
from tests.browser import shown_protocol as grouped
from tests.conftest import make_settings
from tests.fakeasterisk.agi import fake_call
from tests.live_fakes import FakeTracker

pytestmark = pytest.mark.chromium

AGENT_EXT = "PJSIP/1001"


async def issue(running: RunningService, uniqueid: str, callerid: str = "11987654321") -> str:
    """A protocol opened the way a real call opens it (FastAGI route "protocol")."""
    result = await fake_call("127.0.0.1", running.agi_port, uniqueid=uniqueid, callerid=callerid)
    return result.variables["SAC_PROTOCOL"]


async def stored(running: RunningService, number: str) -> Protocol:
    async with running.core.sessionmaker() as session:
        protocol = await session.scalar(
            select(Protocol).where(Protocol.number == number).options(selectinload(Protocol.events))
        )
    assert protocol is not None
    return protocol


def base(running: RunningService) -> str:
    return f"http://127.0.0.1:{running.http_port}"


@pytest.fixture
async def panel(running_sqlite: RunningService) -> AsyncIterator[RunningService]:
    """The service with a fake tracker and a queue with Ana (agent) and a colleague."""
    tracker = FakeTracker.install(running_sqlite.core)
    tracker.add_member("sac-agents", AGENT_EXT, "Ana", "available")
    tracker.add_member("sac-agents", "PJSIP/1002", "Bruno", "busy")
    yield running_sqlite


async def agent_token(running: RunningService) -> str:
    return await create_token(running.core.sessionmaker, "ana", "agent", AGENT_EXT)


def tracker_of(running: RunningService) -> FakeTracker:
    tracker = running.core.live_calls
    assert isinstance(tracker, FakeTracker)
    return tracker


async def test_agent_panel_follows_a_call_from_queue_to_answer(
    panel: RunningService, browser: Browser
) -> None:
    token = await agent_token(panel)
    earlier = [await issue(panel, "1700000001.1"), await issue(panel, "1700000002.1")]
    someone_else = await issue(panel, "1700000003.1", callerid="21999998888")
    current = await issue(panel, "1700000004.1")

    await login_panel(browser, base(panel) + "/agent", token)
    await browser.wait_for("#who-ext", text=AGENT_EXT)
    await browser.wait_for("#who-name", text="ana")
    await browser.wait_for("#live-status[data-state=live]", visible=True)
    await browser.wait_for("#call-empty", text="Nenhum atendimento aberto")
    await browser.wait_for("#queue-summary", text="sac-agents")
    await browser.screenshot("agent-idle")

    # A call enters the queue: it shows up, caller masked (not this agent's call yet).
    tracker = tracker_of(panel)
    tracker.enter_queue("1700000004.1", current, "+5511987654321", waited_s=12)
    item = await browser.wait_for_text("#queue-calls .call-item", text="•••• 4321")
    assert "98765" not in item
    await browser.wait_for("#queue-count", text="1")
    await browser.screenshot("agent-queue")

    # It rings on this agent's phone: screen pop with the protocol and the history.
    tracker.ring("1700000004.1", AGENT_EXT)
    await browser.wait_for("#my-calls .call-item.state-ringing", text=grouped(current))
    await browser.wait_for("#call-number", text=grouped(current))
    await browser.wait_until(lambda d: d.current_url.endswith(f"/agent/calls/{current}"))
    await browser.wait_for("#customer-facts", text="(11) 98765-4321")
    await browser.wait_for("#history-count", text="2")
    history = await browser.text("#history")
    assert grouped(earlier[0]) in history and grouped(earlier[1]) in history
    assert grouped(someone_else) not in history and grouped(current) not in history
    await browser.wait_for("#call-live .badge", text="Tocando")
    assert await browser.text("#queue-empty") == "Ninguém esperando."

    tracker.connect("1700000004.1", AGENT_EXT, "Ana")
    await browser.wait_for("#call-live .badge", text="Em atendimento")
    await browser.wait_for("#my-calls .call-item.state-connected", text="Em atendimento")
    await browser.screenshot("agent-call")

    tracker.hangup("1700000004.1")
    await browser.wait_for("#my-empty", text="Nenhuma chamada no seu ramal")
    await browser.wait_for("#call-live", text="Sem chamada ativa")
    # The protocol stays open on screen after the call for the agent to finish.
    assert await browser.text("#call-number") == grouped(current)
    assert await browser.console_errors(ignore=EXPECTED_HTTP_ERRORS) == []


async def test_screen_pop_url_opens_the_protocol_after_login(
    panel: RunningService, browser: Browser
) -> None:
    token = await agent_token(panel)
    earlier = await issue(panel, "1700000011.1")
    number = await issue(panel, "1700000012.1")
    await browser.get(f"{base(panel)}/agent/calls/{number}")
    await browser.wait_for("#login-form", text="Token de acesso")
    assert await browser.js("return document.querySelector('#app').hidden") is True
    await browser.screenshot("agent-login")
    await login_panel(browser, f"{base(panel)}/agent/calls/{number}", token)
    await browser.wait_for("#call-number", text=grouped(number))
    await browser.wait_for("#history", text=grouped(earlier))
    await browser.wait_for("#timeline", text="Protocolo aberto")
    # Another protocol of the history opens in place.
    await browser.click("#history a", text=grouped(earlier))
    await browser.wait_for("#call-number", text=grouped(earlier))
    await browser.wait_until(lambda d: d.current_url.endswith(f"/agent/calls/{earlier}"))
    # A mistyped number is refused before any lookup (check digit).
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    await browser.fill("#open-number", wrong)
    await browser.click("#open-form button")
    await browser.wait_for("#call-error", text="inválido")
    assert await browser.console_errors(ignore=EXPECTED_HTTP_ERRORS) == []


async def test_agent_actions_change_the_stored_protocol(
    panel: RunningService, browser: Browser
) -> None:
    token = await agent_token(panel)
    number = await issue(panel, "1700000021.1")
    await login_panel(browser, f"{base(panel)}/agent/calls/{number}", token)
    await browser.wait_for("#call-number", text=grouped(number))
    await browser.wait_for("#f-subject option[value=complaint]", visible=False)

    # A CPF with wrong check digits is caught in the page: nothing is sent.
    await browser.select("#f-subject", "complaint")
    await browser.fill("#f-document", "529.982.247-24")
    await browser.click("#f-name")
    await browser.wait_for("#f-document-note.error", text="CPF inválido")
    await browser.click("#save-details")
    assert await browser.has_class("#f-document", "invalid")
    assert (await stored(panel, number)).customer_document is None

    await browser.fill("#f-document", "52998224725")
    await browser.wait_for("#f-document-note.ok", text="CPF válido")
    await browser.fill("#f-name", "Maria Silva")
    await browser.fill("#f-notes", "Cobrança em duplicidade na fatura de outubro.")
    await browser.click("#save-details")
    await browser.wait_for("#details-state", text="Salvo")
    protocol = await stored(panel, number)
    assert protocol.subject == "complaint"
    assert protocol.customer_document == "52998224725"
    assert protocol.customer_name == "Maria Silva"
    assert protocol.notes == "Cobrança em duplicidade na fatura de outubro."
    assert await browser.js("return document.querySelector('#f-document').value") == (
        "529.982.247-25"
    )

    await browser.select("#s-to", "in_progress")
    await browser.fill("#s-internal-note", "Pedido de estorno aberto no financeiro.")
    await browser.click("#change-status")
    await browser.wait_for("#status-now", text="Em andamento")
    await browser.wait_for("#timeline", text="Pedido de estorno aberto no financeiro.")
    protocol = await stored(panel, number)
    assert protocol.status == "in_progress"
    (change,) = [e for e in protocol.events if e.to_status == "in_progress"]
    assert change.actor == "ana" and change.internal_note
    await browser.screenshot("agent-actions")
    assert await browser.console_errors(ignore=EXPECTED_HTTP_ERRORS) == []


async def test_supervisor_sees_waits_against_the_limit(sqlite_url: str, browser: Browser) -> None:
    running = await start_service(make_settings(sqlite_url, panels_max_wait_s=45), migrate=False)
    try:
        core = running.core
        token = await create_token(core.sessionmaker, "sofia", "supervisor")
        agent = await create_token(core.sessionmaker, "ana", "agent", AGENT_EXT)
        tracker = FakeTracker.install(core)
        tracker.add_member("sac-agents", AGENT_EXT, "Ana", "busy", calls_taken=12)
        tracker.add_member("sac-agents", "PJSIP/1002", "Bruno", "available", calls_taken=9)
        tracker.add_member("sac-agents", "PJSIP/1003", "Carla", "paused", paused_reason="almoço")
        tracker.add_member("sac-agents", "PJSIP/1004", "Davi", "unavailable")
        tracker.add_member("sac-retencao", "PJSIP/1002", "Bruno", "available")
        one = await issue(running, "1700000031.1")
        tracker.enter_queue("L1", one, "+5511987654321", waited_s=75)  # over 45 s
        tracker.enter_queue("L2", None, "+5521912345678", waited_s=10)
        tracker.enter_queue("L3", None, "+5531987650000", waited_s=20)
        tracker.connect("L3", AGENT_EXT, "Ana")
        tracker.enter_queue("L4", None, "+5511955554444", queue="sac-retencao", waited_s=5)
        tracker.ring("L4", "PJSIP/1002")

        # An agent's token does not open the supervisor view.
        await browser.get(base(running) + "/supervisor")
        await browser.fill("#token", agent)
        await browser.click("#login-form button[type=submit]")
        await browser.wait_for("#login-error", text="token de supervisor")
        assert await browser.js("return document.querySelector('#app').hidden") is True

        await browser.fill("#token", token)
        await browser.click("#login-form button[type=submit]")
        await browser.wait_for("#app")
        await browser.wait_for("#live-status[data-state=live]")
        await browser.wait_for("#limit", text="45 s")
        await browser.wait_for("#waiting-total", text="3")
        await browser.wait_for("#waiting-over", text="1 acima do limite de 45 s")
        assert await browser.has_class("#kpi-longest", "over")
        await browser.wait_for("#waiting tr.over", text="(11) 98765-4321")
        await browser.wait_for("#waiting", text="tocando: Bruno")
        await browser.wait_for("#active", text="Ana")
        await browser.wait_for("#queues tr.over", text="sac-agents")
        for status, count in (("available", 1), ("busy", 1), ("paused", 1), ("unavailable", 1)):
            assert await browser.text(f"#agents-{status}") == str(count)
        await browser.wait_for("#agents .member-paused", text="almoço")
        assert "sac-agents, sac-retencao" in await browser.text("#agents")
        await browser.screenshot("supervisor")

        # Live: the longest waiting caller is answered; the alarm goes away.
        tracker.connect("L1", "PJSIP/1002", "Bruno")
        await browser.wait_for("#waiting-total", text="2")
        await browser.wait_for("#waiting-over", text="nenhuma acima do limite")
        assert not await browser.has_class("#kpi-longest", "over")
        await browser.wait_for("#active .late-wait")  # answered after the limit: marked
        assert await browser.console_errors(ignore=EXPECTED_HTTP_ERRORS) == []
        await browser.get("about:blank")
    finally:
        await running.stop(drain_seconds=1.0)


DOCUMENTS = [
    "529.982.247-25",
    "529.982.247-24",
    "52998224725",
    "111.111.111-11",  # checksum-valid repeated digits: the server accepts it too
    "000.000.000-00",
    "11.222.333/0001-81",
    "11.222.333/0001-80",
    "00.000.000/0000-00",
    "1234567890",
    "123456789012345",
    "abc",
    "12.ABC.345/01DE-35",  # alphanumeric CNPJ (from July 2026)
    "12.abc.345/01de-35",
    "12.ABC.345/01DE-36",
    "12ABC34501DEXX",
    "5299822472A",
]


async def test_document_check_in_the_page_agrees_with_the_server(
    running_sqlite: RunningService, browser: Browser
) -> None:
    await browser.get(base(running_sqlite) + "/agent")
    results = await browser.js_async(
        """
        const [docs, done] = arguments;
        import("/panels/static/js/documents.js").then(
          (m) => done(docs.map((d) => [m.checkDocument(d).ok, m.formatDocument(d)])),
          (e) => done(String(e)),
        );
        """,
        DOCUMENTS,
    )
    assert isinstance(results, list), results
    for doc, (ok_in_page, formatted) in zip(DOCUMENTS, results, strict=True):
        try:
            digits = normalize_document(doc)
        except InvalidDocument:
            digits = None
        assert ok_in_page == (digits is not None), doc
        if digits is not None:
            assert normalize_document(formatted) == digits
