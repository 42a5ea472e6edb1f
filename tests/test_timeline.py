"""The protocol timeline: one writer, an enumerated set of kinds, and every kind
described to the customer (history of demands) and named to the agent (panel)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from sac_ivr.db.base import utcnow
from sac_ivr.db.engine import create_engine, make_sessionmaker
from sac_ivr.history.event_text import EVENT_TEXT, describe_event
from sac_ivr.lifecycle.config import LifecycleConfig
from sac_ivr.protocols import timeline
from sac_ivr.protocols.issuer import CallInfo, ProtocolIssuer
from sac_ivr.protocols.numbering import DateSequenceCheck
from sac_ivr.protocols.tables import ProtocolEvent
from sac_ivr.protocols.timeline import EventKind
from tests.conftest import make_settings

PACKAGE = Path(__file__).resolve().parent.parent / "sac_ivr"
WRITER = PACKAGE / "protocols" / "timeline.py"
SETTINGS = make_settings("sqlite+aiosqlite://")
LIFECYCLE = LifecycleConfig.from_settings(SETTINGS)

# One event of each kind as the writers record it, with what the customer reads.
SAMPLES: dict[EventKind, tuple[dict[str, object], str]] = {
    EventKind.OPENED: ({"to_status": "open"}, "Protocolo aberto"),
    EventKind.MENU_CHOICE: (
        {"data": {"choice": "cancellation", "uniqueid": "1.1"}},
        "Opção escolhida no menu de atendimento: cancellation",
    ),
    EventKind.ANSWERED: (
        {"data": {"agent": "Ana", "queue": "sac"}},
        "Ligação atendida pela central de atendimento",
    ),
    EventKind.STATUS: (
        {"from_status": "open", "to_status": "resolved"},
        "Situação alterada de “Aberto” para “Resolvido”",
    ),
    EventKind.FIELD: (
        {"data": {"field": "subject", "from": None, "to": "billing"}},
        "Assunto definido como “Cobrança”",
    ),
    EventKind.CANCELLATION_REGISTERED: (
        {"data": {"effective_at": "2026-12-01T12:00:00+00:00"}},
        "Pedido de cancelamento registrado, com efeito imediato",
    ),
    EventKind.SMS_REQUESTED: (
        {"data": {"result": "queued"}},
        "Envio do protocolo por SMS solicitado na ligação",
    ),
    EventKind.NOTIFICATION_SENT: (
        {"data": {"channel": "sms", "to": "+55 11 9****-4321"}},
        "SMS enviado para +55 11 9****-4321",
    ),
    EventKind.NOTIFICATION_FAILED: (
        {"data": {"channel": "email", "to": None}},
        "E-mail não pôde ser enviado para o cliente",
    ),
    EventKind.HISTORY_REQUESTED: (
        {"data": {"history_request_id": 1, "delivery": "email"}},
        "Histórico de demandas solicitado",
    ),
    EventKind.ANONYMISED: (
        {"data": {"retention_record_days": 1825}},
        "Dados pessoais anonimizados (prazo de guarda encerrado)",
    ),
}


def test_the_history_document_describes_every_kind() -> None:
    assert set(EVENT_TEXT) == set(EventKind)
    assert set(SAMPLES) == set(EventKind)  # a new kind needs its sample here too
    for kind, (fields, expected) in SAMPLES.items():
        event = ProtocolEvent(kind=kind.value, actor="system", **fields)
        assert describe_event(event, LIFECYCLE) == expected, kind


def test_a_kind_from_a_newer_version_is_named_as_stored() -> None:
    event = ProtocolEvent(kind="from_the_future", actor="system")
    assert describe_event(event, LIFECYCLE) == "Registro: from_the_future"


def test_internal_field_changes_stay_out_of_the_history() -> None:
    for field in ("agent", "notes"):
        event = ProtocolEvent(kind="field", actor="ana", data={"field": field})
        assert describe_event(event, LIFECYCLE) is None


def test_the_agent_panel_names_every_kind() -> None:
    script = (PACKAGE / "panels" / "static" / "js" / "agent.js").read_text(encoding="utf-8")
    block = re.search(r"const EVENT_KINDS = \{(.*?)\};", script, re.S)
    assert block is not None
    named = set(re.findall(r"^\s*(\w+):", block.group(1), re.M))
    assert set(EventKind) <= named


def test_kinds_fit_their_column() -> None:
    width = ProtocolEvent.__table__.c.kind.type.length
    assert all(len(kind.value) <= width for kind in EventKind)


def _writes_timeline_rows(source: str) -> bool:
    """Whether this code constructs a ``ProtocolEvent`` or names its table (to insert)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "ProtocolEvent":
                return True
        if isinstance(node, ast.Attribute) and node.attr == "__table__":
            if isinstance(node.value, ast.Name) and node.value.id == "ProtocolEvent":
                return True
    return False


def test_the_scan_sees_both_ways_of_writing() -> None:
    assert _writes_timeline_rows("session.add(ProtocolEvent(kind='x'))")
    assert _writes_timeline_rows("insert(ProtocolEvent.__table__).values()")
    assert not _writes_timeline_rows("select(ProtocolEvent).where(ProtocolEvent.kind == 'x')")


def test_only_the_timeline_module_writes_timeline_rows() -> None:
    offenders = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path != WRITER and _writes_timeline_rows(path.read_text(encoding="utf-8"))
    }
    assert not offenders


async def test_kinds_are_stored_as_their_plain_strings(db_url: str) -> None:
    engine = create_engine(db_url)
    issuer = ProtocolIssuer(engine, DateSequenceCheck(), SETTINGS.tz)
    try:
        issued = await issuer.issue(CallInfo())
        sessionmaker = make_sessionmaker(engine)
        async with sessionmaker() as session, session.begin():
            protocol_id = await session.scalar(
                text("SELECT id FROM protocols WHERE number = :n"), {"n": issued.number}
            )
            assert isinstance(protocol_id, int)
            event = timeline.record(
                session, protocol_id, EventKind.MENU_CHOICE, actor="caller", data={"choice": "x"}
            )
            await session.flush()
            assert event.id is not None and event.at <= utcnow()
            with pytest.raises(ValueError):
                timeline.record(session, protocol_id, "no_such_kind", actor="system")  # type: ignore[arg-type]
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("SELECT kind, actor FROM protocol_events ORDER BY id")
                )
            ).all()
    finally:
        await issuer.close()
        await engine.dispose()
    assert [tuple(r) for r in rows] == [("opened", "system"), ("menu_choice", "caller")]
    assert all(type(r[0]) is str for r in rows)
