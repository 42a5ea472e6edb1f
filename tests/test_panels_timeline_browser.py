"""The agent panel's timeline names what the call log records (no Asterisk needed).

Found on a real call (tests/asterisk/test_e2e_agents.py): the call log's "answered"
entry showed as a bare ``answered`` by ``system``. It must read in Portuguese and
say who took the call.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sac_ivr.auth.services import create_token
from sac_ivr.db.base import utcnow
from sac_ivr.protocols.tables import Protocol, ProtocolEvent
from sac_ivr.runner import RunningService
from tests.browser import EXPECTED_HTTP_ERRORS, Browser, login_panel, shown_protocol
from tests.fakeasterisk.agi import fake_call

pytestmark = pytest.mark.chromium


async def test_answered_entry_names_the_agent_in_portuguese(
    running_sqlite: RunningService, browser: Browser
) -> None:
    core = running_sqlite.core
    result = await fake_call("127.0.0.1", running_sqlite.agi_port, uniqueid="1700000101.1")
    number = result.variables["SAC_PROTOCOL"]
    # the entry as sac_ivr.calls.protocol_links.write_links writes it (timeline.record)
    async with core.sessionmaker() as session, session.begin():
        protocol_id = await session.scalar(select(Protocol.id).where(Protocol.number == number))
        session.add(
            ProtocolEvent(
                protocol_id=protocol_id,
                at=utcnow(),
                actor="system",
                kind="answered",
                data={
                    "agent": "Ana Souza",
                    "agent_interface": "PJSIP/1001",
                    "queue": "sac-agents",
                    "linkedid": "1700000101.1",
                },
            )
        )
    token = await create_token(core.sessionmaker, "ana", "agent", "PJSIP/1001")
    base = f"http://127.0.0.1:{running_sqlite.http_port}"
    await login_panel(browser, f"{base}/agent/calls/{number}", token)
    await browser.wait_for("#call-number", text=shown_protocol(number))
    entry = await browser.wait_for_text("#timeline .kind-answered", text="Ligação atendida")
    assert "Atendente: Ana Souza (fila sac-agents)" in entry
    assert "sistema" in entry and "system" not in entry
    opened = await browser.text("#timeline .kind-opened")
    assert "sistema" in opened
    assert await browser.console_errors(ignore=EXPECTED_HTTP_ERRORS) == []
