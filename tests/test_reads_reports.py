"""Reads at scale (issue #10 item 7): the reports aggregated in SQL and the listings
paged from indexes give the same answers as a straightforward recomputation — the
report code as it was (bench/reports_before.py: Python over every row of the period)
and plain queries — on data made by bench/gen_data.py, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import or_, select, text

from bench import reports_before
from bench.gen_data import generate
from sac_ivr.calls import services as calls_services
from sac_ivr.calls.tables import CallLog
from sac_ivr.core import Core
from sac_ivr.features import build_core
from sac_ivr.lifecycle.statuses import PENDING_STATUSES
from sac_ivr.protocols import services as protocol_services
from sac_ivr.protocols.tables import Protocol
from sac_ivr.reports import services
from tests.conftest import make_settings

NOW = datetime(2026, 11, 20, 15, 7, 31, 123456, tzinfo=UTC)


@pytest.fixture(params=["America/Sao_Paulo", "Asia/Kolkata"])
async def data(db_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Core]:
    """2,500 protocols over 90 days (timelines, calls, outbox), then some oddities the
    generator does not make: pending requests with no due date, calls whose member
    name is missing or is an interface."""
    settings = make_settings(db_url, timezone=request.param)
    await asyncio.to_thread(generate, db_url, 2500, days=90, seed=7, settings=settings, now=NOW)
    core = build_core(settings)
    async with core.sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE protocols SET due_at = NULL WHERE id % 41 = 0"))
        await session.execute(text("UPDATE calls SET agent_name = NULL WHERE id % 3 = 0"))
        await session.execute(
            text("UPDATE calls SET agent_name = agent_interface WHERE id % 7 = 0")
        )
    yield core
    await core.close()


def _same(new: Any, old: Any, where: str = "") -> None:
    """Equal, floats within the last rounded digit (the sums are added in another
    order: SQL instead of Python)."""
    if isinstance(old, float) and isinstance(new, float):
        assert abs(new - old) <= 0.0100001, (where, new, old)
    elif isinstance(old, dict):
        assert isinstance(new, dict) and new.keys() == old.keys(), (where, new, old)
        for key in old:
            _same(new[key], old[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), (where, new, old)
        for i, (n, o) in enumerate(zip(new, old, strict=True)):
            _same(n, o, f"{where}[{i}]")
    else:
        assert new == old, (where, new, old)


PERIODS = [
    (NOW - timedelta(days=30), NOW),
    (NOW - timedelta(days=7, hours=5, minutes=13), NOW - timedelta(days=1, minutes=29)),
    (NOW - timedelta(days=80), NOW - timedelta(days=50)),
    (NOW - timedelta(days=400), NOW - timedelta(days=300)),  # nothing in it
]


async def test_reports_are_the_recomputation(data: Core):
    for period in PERIODS:
        await _full_report_is_the_recomputation(data, period)
    for kind in services.LIST_KINDS:
        await _deadline_list_pages_like_the_recomputation(data, kind)


async def _full_report_is_the_recomputation(data: Core, period: tuple[datetime, datetime]):
    params = services.ReportParams(services.Period(*period), NOW, 2)
    config = data.lifecycle
    async with data.reader() as session:
        new = await services.full_report(session, params, config)
        old = await reports_before.full_report(session, params, config)
    _same(await services.full_report_concurrently(data.reader, params, config), old)
    async with data.reader() as session:
        for kind in ("subject", "department"):
            column = Protocol.subject if kind == "subject" else Protocol.department
            _same(
                await services.by_column(session, params, column, config, kind),
                await reports_before.by_column(session, params, column, config, kind),
                kind,
            )
    _same(new, old)
    if period[1] == NOW:  # the data really is there: the test compares something
        assert new["totals"]["opened"] > 500
        assert new["resolution"]["count"] > 100
        assert len(new["by_agent"]) >= 40
        assert new["overdue_total"] > 20
        assert sum(h["calls"] for h in new["calls_per_hour"]) == new["totals"]["opened"]


async def _deadline_list_pages_like_the_recomputation(data: Core, kind: str):
    params = services.ReportParams(services.Period(NOW - timedelta(days=30), NOW), NOW, 3)
    config = data.lifecycle
    async with data.reader() as session:
        _, total = await reports_before.deadline_list(session, params, kind, config, 1, 0)
        undated = await session.scalar(
            select(text("count(*)"))
            .select_from(Protocol)
            .where(Protocol.due_at.is_(None), Protocol.status.in_(PENDING_STATUSES))
        )
        assert total > 10 and (kind != "pending" or undated)
        # Pages at the start, across the dated/undated boundary, at and past the end.
        for limit, offset in [
            (20, 0),
            (7, 3),
            (25, total - undated - 10),
            (50, total - 5),
            (10, total),
            (10, total + 3),
            (1000, 0),
        ]:
            offset = max(offset, 0)
            new = await services.deadline_list(session, params, kind, config, limit, offset)
            old = await reports_before.deadline_list(session, params, kind, config, limit, offset)
            _same(new, old, f"{kind} {limit} {offset}")


async def test_listings_are_the_plain_queries(data: Core):
    await _calls_by_agent_page_like_the_or_query(data)
    await _overdue_protocols_listing(data)


async def _calls_by_agent_page_like_the_or_query(data: Core):
    async with data.reader() as session:
        for agent in ("agente07", "PJSIP/1007", "agente99"):
            either = or_(CallLog.agent_name == agent, CallLog.agent_interface == agent)
            everyone = (
                await session.scalars(
                    select(CallLog.id)
                    .where(either)
                    .order_by(CallLog.started_at.desc(), CallLog.id.desc())
                )
            ).all()
            assert agent == "agente99" or len(everyone) > 20
            for limit, offset in [(50, 0), (5, 3), (10, len(everyone) - 4), (10, len(everyone))]:
                offset = max(offset, 0)
                for since in (None, NOW - timedelta(days=20)):
                    flt = calls_services.CallFilter(agent=agent, since=since)
                    rows, total = await calls_services.find(session, flt, limit, offset)
                    expected = (
                        await session.scalars(
                            select(CallLog.id)
                            .where(either, *([CallLog.started_at >= since] if since else []))
                            .order_by(CallLog.started_at.desc(), CallLog.id.desc())
                        )
                    ).all()
                    assert [r.id for r in rows] == list(expected[offset : offset + limit])
                    assert total == len(expected)


async def _overdue_protocols_listing(data: Core):
    """The protocols listing's pending filter now repeats the partial index's term."""
    async with data.reader() as session:
        flt = protocol_services.ProtocolFilter(pending_only=True, due_before=NOW)
        rows, total = await protocol_services.find(session, flt, 30, 5)
        expected = (
            await session.scalars(
                select(Protocol.id)
                .where(Protocol.status.in_(PENDING_STATUSES), Protocol.due_at < NOW)
                .order_by(Protocol.issued_at.desc(), Protocol.id.desc())
            )
        ).all()
    assert total == len(expected) > 30
    assert [p.id for p in rows] == list(expected[5:35])
