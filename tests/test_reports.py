"""Supervisor reports: every figure equals a direct query of seeded data; JSON, CSV,
and the HTML page rendered by headless Chromium."""

from __future__ import annotations

import csv
import io
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import text

from sac_ivr.auth.services import create_token
from sac_ivr.db.base import utcnow
from sac_ivr.lifecycle.statuses import ANSWERED_STATUSES, PENDING_STATUSES
from sac_ivr.protocols.tables import Protocol, ProtocolEvent
from sac_ivr.runner import RunningService
from tests.browser import Browser
from tests.notify_fakes import Api

SUBJECTS = ["complaint", "billing", "information", "cancellation", None]
DEPARTMENTS = ["billing", "technical", "customer_service", None]
AGENTS = ["ana", "bruno", "carla"]
STATUSES = [
    "open",
    "forwarded",
    "in_progress",
    "waiting_customer",
    "resolved",
    "closed",
    "cancelled",
]


@dataclass
class Seeded:
    now: datetime
    start: datetime  # the report period, local days
    end: datetime
    query: dict[str, str]


async def seed(running: RunningService, count: int = 120) -> Seeded:
    """Protocols over the last 40 days (some before the period), every status,
    due dates whole days plus 12 h away from now (no boundary at test time)."""
    core = running.core
    tz = core.settings.tz
    rng = random.Random(20261122)
    now = utcnow()
    today = now.astimezone(tz).date()
    start = datetime.combine(today - timedelta(days=20), time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    protocols, events = [], []
    for i in range(count):
        opened = now - timedelta(days=rng.uniform(0.2, 40), minutes=rng.randint(0, 59))
        status = rng.choice(STATUSES)
        due = now + timedelta(days=rng.choice([-6, -3, -1, 0, 1, 2, 4, 9])) + timedelta(hours=12)
        resolved = None
        if status in ANSWERED_STATUSES:
            resolved = min(opened + timedelta(hours=rng.uniform(0.5, 200)), now)
        p = Protocol(
            id=i + 1,
            number=core.protocol_format.render(opened.astimezone(tz).date(), 500_000 + i),
            issued_at=opened,
            issue_date=opened.astimezone(tz).date(),
            status=status,
            subject=rng.choice(SUBJECTS),
            department=rng.choice(DEPARTMENTS),
            agent=rng.choice([*AGENTS, None]),
            due_at=due,
            resolved_at=resolved,
            updated_at=opened,
        )
        protocols.append(p)
        actor = rng.choice(AGENTS)
        if status != "open":
            events.append(
                ProtocolEvent(
                    protocol_id=p.id,
                    at=opened + timedelta(minutes=30),
                    actor=actor,
                    kind="status",
                    from_status="open",
                    to_status="in_progress",
                )
            )
        if resolved is not None:
            events.append(
                ProtocolEvent(
                    protocol_id=p.id,
                    at=resolved,
                    actor=actor,
                    kind="status",
                    from_status="in_progress",
                    to_status=status,
                )
            )
        events.append(ProtocolEvent(protocol_id=p.id, at=opened, actor="system", kind="opened"))
    async with core.sessionmaker() as session, session.begin():
        session.add_all(protocols)
        await session.flush()
        session.add_all(events)
    query = {
        "from": (today - timedelta(days=20)).isoformat(),
        "until": today.isoformat(),
        "due_within_days": "3",
    }
    return Seeded(now, start, end, query)


async def expected(running: RunningService, s: Seeded) -> dict:
    """The figures by direct SQL over the seeded rows (and plain Python for times)."""
    tz = running.core.settings.tz
    pending = tuple(PENDING_STATUSES)
    answered = tuple(ANSWERED_STATUSES)
    now = utcnow()
    async with running.core.sessionmaker() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT status, subject, department, agent, issued_at, due_at, resolved_at "
                    "FROM protocols"
                )
            )
        ).all()
        status_events = (
            await session.execute(
                text(
                    "SELECT e.actor, e.from_status, e.to_status, e.at, p.issued_at "
                    "FROM protocol_events e JOIN protocols p ON p.id = e.protocol_id "
                    "WHERE e.kind = 'status'"
                )
            )
        ).all()

    def aware(v):
        if isinstance(v, str):
            v = datetime.fromisoformat(v)
        return v if v.tzinfo else v.replace(tzinfo=UTC)

    rows = [
        (st, subj, dept, agent, aware(i), aware(d), aware(r) if r else None)
        for st, subj, dept, agent, i, d, r in rows
    ]
    in_period = [r for r in rows if s.start <= r[4] < s.end]
    soon = now + timedelta(days=3)
    out = {
        "pending": sum(r[0] in pending for r in rows),
        "overdue": sum(r[0] in pending and r[5] < now for r in rows),
        "due_soon": sum(r[0] in pending and now <= r[5] < soon for r in rows),
        "opened": len(in_period),
    }
    durations = sorted(
        (r[6] - r[4]).total_seconds() / 3600
        for r in rows
        if r[0] in answered and r[6] is not None and s.start <= r[6] < s.end
    )
    out["resolved"] = len(durations)
    out["avg_hours"] = round(sum(durations) / len(durations), 2)
    out["p90_hours"] = round(durations[math.ceil(0.9 * len(durations)) - 1], 2)
    for key, col in (("by_subject", 1), ("by_department", 2)):
        groups: dict = defaultdict(lambda: {"opened": 0, "pending": 0, "overdue": 0})
        for r in in_period:
            g = groups[r[col]]
            g["opened"] += 1
            g["pending"] += r[0] in pending
            g["overdue"] += r[0] in pending and r[5] < now
        out[key] = {k: dict(v) for k, v in groups.items()}
    hours = Counter(r[4].astimezone(tz).hour for r in in_period)
    out["calls_per_hour"] = [hours.get(h, 0) for h in range(24)]
    agents: dict = defaultdict(lambda: {"status_changes": 0, "answered": 0})
    for actor, frm, to, at, _opened in status_events:
        at = aware(at)
        if not (s.start <= at < s.end) or actor in ("system", "caller"):
            continue
        agents[actor]["status_changes"] += 1
        agents[actor]["answered"] += frm in pending and to in answered
    out["by_agent"] = {k: dict(v) for k, v in agents.items()}
    out["assigned_pending"] = Counter(r[3] for r in rows if r[3] and r[0] in pending)
    return out


@pytest.fixture
async def supervisor(running: RunningService) -> Api:
    token = await create_token(running.core.sessionmaker, "sueli", "supervisor")
    return Api(running.http_port, token)


async def test_report_figures_equal_direct_queries(
    running: RunningService, supervisor: Api
) -> None:
    s = await seed(running)
    status, report, _ = await supervisor.call("GET", "/api/v1/reports/summary", **s.query)
    assert status == 200, report
    want = await expected(running, s)
    t = report["totals"]
    assert (t["pending"], t["overdue"], t["due_soon"], t["opened"]) == (
        want["pending"],
        want["overdue"],
        want["due_soon"],
        want["opened"],
    )
    assert want["overdue"] > 0 and want["due_soon"] > 0 and want["opened"] < 120
    assert report["resolution"] == {
        "count": want["resolved"],
        "avg_hours": want["avg_hours"],
        "p90_hours": want["p90_hours"],
    }
    for key in ("by_subject", "by_department"):
        got = {
            i["code"]: {"opened": i["opened"], "pending": i["pending"], "overdue": i["overdue"]}
            for i in report[key]
        }
        assert got == want[key]
        for i in report[key]:
            assert i["answered"] == i["opened"] - i["pending"]
    assert [c["calls"] for c in report["calls_per_hour"]] == want["calls_per_hour"]
    got_agents = {
        a["agent"]: {"status_changes": a["status_changes"], "answered": a["answered"]}
        for a in report["by_agent"]
    }
    assert got_agents == want["by_agent"]
    assert {a["agent"]: a["assigned_pending"] for a in report["by_agent"]} == dict(
        want["assigned_pending"]
    )
    assert report["overdue_total"] == want["overdue"]
    dues = [o["due_at"] for o in report["overdue_top"]]
    assert dues == sorted(dues) and len(dues) == min(20, want["overdue"])


async def test_report_tables_as_json_and_csv(running: RunningService, supervisor: Api) -> None:
    s = await seed(running)
    want = await expected(running, s)
    status, body, _ = await supervisor.call("GET", "/api/v1/reports/overdue", limit="1000")
    assert status == 200 and body["total"] == want["overdue"] == len(body["items"])
    status, body, _ = await supervisor.call("GET", "/api/v1/reports/due-soon", due_within_days="3")
    assert body["total"] == want["due_soon"]
    status, body, _ = await supervisor.call("GET", "/api/v1/reports/pending", limit="5")
    assert body["total"] == want["pending"] and len(body["items"]) == 5
    status, _, raw = await supervisor.call(
        "GET", "/api/v1/reports/by-subject", format="csv", **s.query
    )
    assert status == 200
    table = list(csv.DictReader(io.StringIO(raw)))
    assert {r["code"]: int(r["opened"]) for r in table} == {
        (k or ""): v["opened"] for k, v in want["by_subject"].items()
    }
    status, _, raw = await supervisor.call(
        "GET", "/api/v1/reports/calls-per-hour", format="csv", **s.query
    )
    assert [int(r["calls"]) for r in csv.DictReader(io.StringIO(raw))] == want["calls_per_hour"]
    status, _, raw = await supervisor.call(
        "GET", "/api/v1/reports/by-agent", format="csv", **s.query
    )
    assert {r["agent"] for r in csv.DictReader(io.StringIO(raw))} == set(AGENTS)


async def test_report_access_and_parameters(running: RunningService, supervisor: Api) -> None:
    agent = await create_token(running.core.sessionmaker, "ana", "agent")
    status, _, _ = await supervisor.call("GET", "/api/v1/reports/summary", token=agent)
    assert status == 403
    status, _, _ = await supervisor.call("GET", "/reports", token="")
    assert status == 401
    for params, field in [
        ({"from": "2026-02-30"}, "from"),
        ({"from": "2026-03-10", "until": "2026-03-01"}, "from"),
        ({"from": "2020-01-01", "until": "2026-01-01"}, "until"),
        ({"due_within_days": "-1"}, "due_within_days"),
    ]:
        status, body, _ = await supervisor.call("GET", "/api/v1/reports/summary", **params)
        assert status == 400 and body["error"]["details"]["field"] == field, (params, body)
    status, _, _ = await supervisor.call("GET", "/api/v1/reports/nope")
    assert status == 404


async def test_empty_database_gives_a_readable_report(
    running: RunningService, supervisor: Api
) -> None:
    status, report, _ = await supervisor.call("GET", "/api/v1/reports/summary")
    assert status == 200
    assert report["totals"]["pending"] == 0 and report["resolution"]["avg_hours"] is None
    status, _, html = await supervisor.call("GET", "/reports")
    assert status == 200 and "Sem dados" in html


async def test_report_page_in_chromium_shows_the_right_numbers(
    running_sqlite: RunningService, browser: Browser
) -> None:
    running = running_sqlite
    token = await create_token(running.core.sessionmaker, "sueli", "supervisor")
    s = await seed(running)
    want = await expected(running, s)
    base = f"http://127.0.0.1:{running.http_port}"
    await browser.get(base + "/healthz")
    # Logged in as the panel does it: the token traded for a session cookie.
    login = await browser.js(
        "return fetch('/api/v1/session', {method: 'POST', headers: {'Content-Type': "
        "'application/json'}, body: JSON.stringify({token: arguments[0]})}).then(r => r.status)",
        token,
    )
    assert login == 200
    await browser.console_errors()  # the JSON page's favicon request: not the report's
    query = "&".join(f"{k}={v}" for k, v in s.query.items())
    await browser.get(f"{base}/reports?{query}")
    await browser.wait_for('[data-kpi="overdue"]')
    kpis = await browser.js(
        "return Object.fromEntries([...document.querySelectorAll('[data-kpi]')]"
        ".map(e => [e.dataset.kpi, e.querySelector('.value').textContent]))"
    )
    assert kpis["pending"] == str(want["pending"])
    assert kpis["overdue"] == str(want["overdue"])
    assert kpis["due_soon"] == str(want["due_soon"])
    assert kpis["opened"] == str(want["opened"])
    assert kpis["resolved"] == str(want["resolved"])
    assert kpis["avg_hours"] == f"{want['avg_hours']:.1f}".replace(".", ",") + " h"
    bars = await browser.js(
        "return [...document.querySelectorAll('#chart-calls-per-hour rect[data-value]')]"
        ".map(r => Number(r.dataset.value))"
    )
    assert bars == want["calls_per_hour"]
    subject_rows = await browser.js(
        "return [...document.querySelectorAll('#table-subject tbody tr')]"
        ".map(tr => [...tr.children].map(td => td.textContent))"
    )
    labels = {
        "complaint": "Reclamação",
        "billing": "Cobrança",
        "information": "Informação",
        "cancellation": "Cancelamento",
        None: "Não informado",
    }
    got = {row[0]: (int(row[1]), int(row[3]), int(row[4])) for row in subject_rows}
    assert got == {
        labels[k]: (v["opened"], v["pending"], v["overdue"]) for k, v in want["by_subject"].items()
    }
    # The bars are drawn with real widths (the chart is not empty).
    width = await browser.js(
        "return document.querySelector('#chart-subject').getBoundingClientRect().width"
    )
    assert width > 300
    assert await browser.console_errors() == []
    path = await browser.screenshot("reports-page")
    assert path.stat().st_size > 10_000
    await browser.js("window.scrollTo(0, document.body.scrollHeight)")
    await browser.screenshot("reports-page-bottom")
