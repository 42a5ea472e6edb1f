"""Retention: ``sac-ivr retention --dry-run`` lists, the real run deletes recordings
past 90 days and anonymises records 2 years after resolution; open requests are
never touched."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from sac_ivr.calls.tables import CallLog
from sac_ivr.cli import main
from sac_ivr.core import Core
from sac_ivr.db.base import utcnow
from sac_ivr.history.tables import HistoryRequest
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.protocols.tables import Protocol, ProtocolEvent
from tests.conftest import make_settings

DAY = 86400


def recording(root: Path, name: str, age_days: float) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF....WAVE")
    when = utcnow().timestamp() - age_days * DAY
    os.utime(path, (when, when))
    return path


async def seed(db_url: str) -> dict[str, Protocol]:
    core = Core.create(make_settings(db_url))
    now = utcnow()
    fmt = core.protocol_format

    def protocol(key: int, status: str, opened_days: int, resolved_days: int | None) -> Protocol:
        opened = now - timedelta(days=opened_days)
        return Protocol(
            number=fmt.render(opened.date(), 700_000 + key),
            issued_at=opened,
            issue_date=opened.date(),
            status=status,
            subject="complaint",
            department="billing",
            agent="ana",
            caller_number="11987654321",
            caller_e164="+5511987654321",
            caller_name="Maria Silva",
            customer_document="52998224725",
            customer_name="Maria Silva",
            customer_email="maria@exemplo.com.br",
            customer_phone="+5511987654321",
            notes="cliente pediu retorno à tarde",
            uniqueid=f"17000{key}.1",
            resolved_at=now - timedelta(days=resolved_days) if resolved_days is not None else None,
            updated_at=opened,
        )

    rows = {
        "old_closed": protocol(1, "closed", 900, 800),
        "old_cancelled": protocol(2, "cancelled", 1100, 1000),
        "recent_resolved": protocol(3, "resolved", 120, 100),
        "old_open": protocol(4, "open", 900, None),
        "reopened": protocol(5, "in_progress", 900, 800),  # answered once, open again
    }
    try:
        async with core.sessionmaker() as session, session.begin():
            session.add_all(rows.values())
            await session.flush()
            for p in rows.values():
                session.add(
                    ProtocolEvent(
                        protocol_id=p.id,
                        at=p.issued_at,
                        actor="ana",
                        kind="status",
                        from_status="open",
                        to_status="in_progress",
                        customer_note="Maria, já estamos verificando",
                        internal_note="cliente irritada",
                        data={"field": "customer_email", "from": "x@y.com", "to": "z@w.com"},
                    )
                )
                session.add(
                    OutboxMessage(
                        key=f"k{p.id}",
                        protocol_id=p.id,
                        kind="status",
                        channel="email",
                        recipient="maria@exemplo.com.br",
                        body="Olá, Maria",
                        status="sent",
                        attempts=1,
                        next_attempt_at=p.issued_at,
                        created_at=p.issued_at,
                    )
                )
            for linkedid, number_key, rec, days in (
                ("c-open", "old_open", "/var/spool/asterisk/monitor/open-call.wav", 900),
                ("c-closed", "old_closed", "/var/spool/asterisk/monitor/closed-call.wav", 900),
                ("c-none", None, None, 900),
                ("c-new", None, None, 5),
            ):
                session.add(
                    CallLog(
                        linkedid=linkedid,
                        protocol_number=rows[number_key].number if number_key else None,
                        caller_number="11987654321",
                        caller_e164="+5511987654321",
                        caller_name="Maria Silva",
                        started_at=now - timedelta(days=days),
                        recording_file=rec,
                        outcome="answered",
                    )
                )
            for delivered_days in (800, None, 10):
                session.add(
                    HistoryRequest(
                        requested_at=now - timedelta(days=810),
                        requested_by="ana",
                        phone_e164="+5511987654321",
                        document="52998224725",
                        delivery="email",
                        email="maria@exemplo.com.br",
                        due_at=now - timedelta(days=805),
                        delivered_at=(
                            now - timedelta(days=delivered_days) if delivered_days else None
                        ),
                    )
                )
    finally:
        await core.close()
    return {k: p.number for k, p in rows.items()}


async def load(
    db_url: str,
) -> tuple[dict[str, Protocol], list[OutboxMessage], list[HistoryRequest]]:
    core = Core.create(make_settings(db_url))
    try:
        async with core.sessionmaker() as session:
            protocols = {
                p.number: p
                for p in await session.scalars(
                    select(Protocol).execution_options(populate_existing=True)
                )
            }
            for p in protocols.values():
                p.loaded_events = list(  # type: ignore[attr-defined]
                    await session.scalars(
                        select(ProtocolEvent).where(ProtocolEvent.protocol_id == p.id)
                    )
                )
            outbox = list(await session.scalars(select(OutboxMessage)))
            history = list(
                await session.scalars(select(HistoryRequest).order_by(HistoryRequest.id))
            )
            calls = {c.linkedid: c for c in await session.scalars(select(CallLog))}
        return protocols, outbox, history, calls
    finally:
        await core.close()


@pytest.fixture
def recordings(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "recordings"
    return {
        "expired": recording(root, "2026/08/20260801-1700000999.9.wav", 110),
        "recent": recording(root, "2026/11/20261112-1700001000.1.wav", 10),
        # of a request still open (its uniqueid in the name): kept whatever its age
        "open": recording(root, "2024/06/20240601-170004.1.wav", 900),
        # named by the call log: of the open request (kept) and of the closed one
        "open_call": recording(root, "monitor/open-call.wav", 900),
        "closed_call": recording(root, "monitor/closed-call.wav", 900),
    }


def run(db_url: str, root: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> dict:
    code = main(
        [
            "retention",
            "--database-url",
            db_url,
            "--recordings-dir",
            str(root),
            "--log-level",
            "WARNING",
            "--json",
            *flags,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_dry_run_lists_and_the_real_run_does_it(
    db_url: str, recordings: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    numbers = asyncio.run(seed(db_url))
    root = recordings["expired"].parents[2]
    before = asyncio.run(load(db_url))

    plan = run(db_url, root, capsys, "--dry-run")
    assert plan["dry_run"] is True and plan["result"] is None
    assert sorted(p["number"] for p in plan["protocols"]) == sorted(
        [numbers["old_closed"], numbers["old_cancelled"]]
    )
    by_path = {r["path"]: r for r in plan["recordings"]}
    assert by_path[str(recordings["expired"])]["delete"] is True
    assert by_path[str(recordings["open"])]["delete"] is False
    assert by_path[str(recordings["open_call"])]["delete"] is False
    assert by_path[str(recordings["closed_call"])]["delete"] is True
    assert "still open" in by_path[str(recordings["open"])]["reason"]
    assert str(recordings["recent"]) not in by_path
    assert len(plan["history_requests"]) == 1
    # Nothing changed.
    assert all(p.exists() for p in recordings.values())
    after_dry = asyncio.run(load(db_url))
    assert {n: p.customer_name for n, p in after_dry[0].items()} == {
        n: p.customer_name for n, p in before[0].items()
    }
    assert len(after_dry[1]) == len(before[1]) == 5

    done = run(db_url, root, capsys)
    assert done["result"] == {
        "recordings_deleted": 2,
        "protocols_anonymised": 2,
        "history_requests_anonymised": 1,
        "calls_without_protocol_anonymised": 1,
        "errors": [],
    }
    assert not recordings["expired"].exists() and not recordings["closed_call"].exists()
    assert recordings["recent"].exists() and recordings["open"].exists()
    assert recordings["open_call"].exists()
    protocols, outbox, history, calls = asyncio.run(load(db_url))
    assert calls["c-closed"].caller_e164 is None and calls["c-closed"].recording_file is None
    assert calls["c-none"].caller_number is None and calls["c-none"].caller_name is None
    assert calls["c-open"].caller_e164 == "+5511987654321"
    assert calls["c-open"].recording_file.endswith("open-call.wav")
    assert calls["c-new"].caller_e164 == "+5511987654321"
    for key in ("old_closed", "old_cancelled"):
        p = protocols[numbers[key]]
        assert p.anonymised_at is not None
        assert (p.caller_e164, p.customer_document, p.customer_email, p.notes) == (
            None,
            None,
            None,
            None,
        )
        assert (p.subject, p.department, p.agent, p.status) == (
            "complaint",
            "billing",
            "ana",
            key.split("_")[1],
        )
        status_event = next(e for e in p.loaded_events if e.kind == "status")
        assert status_event.customer_note is None and status_event.internal_note is None
        assert status_event.data == {"field": "customer_email"}
        assert any(e.kind == "anonymised" for e in p.loaded_events)
    for key in ("recent_resolved", "old_open", "reopened"):
        p = protocols[numbers[key]]
        assert p.anonymised_at is None and p.customer_name == "Maria Silva"
        assert next(e for e in p.loaded_events if e.kind == "status").internal_note
    assert sorted(m.protocol_id for m in outbox) == sorted(
        protocols[numbers[k]].id for k in ("recent_resolved", "old_open", "reopened")
    )
    assert [h.anonymised_at is not None for h in history] == [True, False, False]
    assert history[0].phone_e164 is None and history[1].phone_e164 == "+5511987654321"

    again = run(db_url, root, capsys)
    assert again["plan"] == {
        "recordings_to_delete": 0,
        "recordings_kept_open_request": 2,
        "protocols_to_anonymise": 0,
        "history_requests_to_anonymise": 0,
        "calls_without_protocol_to_anonymise": 0,
    }


def test_human_readable_dry_run(
    sqlite_url: str, recordings: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(seed(sqlite_url))
    root = recordings["expired"].parents[2]
    code = main(
        ["retention", "--dry-run", "--database-url", sqlite_url, "--recordings-dir", str(root)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"recording {recordings['expired']} (110 days old): would delete (expired)" in out
    assert "keep (request still open" in out
    assert out.count(": would anonymise") == 3  # two protocols, one history request
    assert out.strip().splitlines()[-1].startswith("dry run: 2 recording(s) to delete")
    assert recordings["expired"].exists()
