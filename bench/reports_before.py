"""The report queries as they were before issue #10 item 7 (Python loops over every
row of the period), kept callable: bench/reads.py prints them as the baseline and
tests/test_reads_reports.py compares the SQL aggregation with them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, cast

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.history.tables import HistoryRequest
from sac_ivr.http.listing import iso
from sac_ivr.lifecycle.config import LifecycleConfig
from sac_ivr.lifecycle.statuses import ANSWERED_STATUSES, PENDING_STATUSES, status_label
from sac_ivr.protocols.tables import Protocol, ProtocolEvent
from sac_ivr.protocols.timeline import EventKind

SYSTEM_ACTORS = ("system", "caller")
LIST_KINDS = ("pending", "overdue", "due-soon")


@dataclass(frozen=True)
class Period:
    start: datetime  # inclusive, aware
    end: datetime  # exclusive, aware


@dataclass(frozen=True)
class ReportParams:
    period: Period
    now: datetime
    due_within_days: int


def hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def p90(values: Sequence[float]) -> float | None:
    """90th percentile, nearest-rank method (a value that really occurred)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def totals(session: AsyncSession, params: ReportParams) -> dict[str, Any]:
    now = params.now
    pending = Protocol.status.in_(PENDING_STATUSES)
    soon_until = now + timedelta(days=params.due_within_days)
    row = (
        await session.execute(
            select(
                func.count().filter(pending),
                func.count().filter(and_(pending, Protocol.due_at < now)),
                func.count().filter(
                    and_(pending, Protocol.due_at >= now, Protocol.due_at < soon_until)
                ),
            )
        )
    ).one()
    period = params.period
    opened = await session.scalar(
        select(func.count()).where(
            Protocol.issued_at >= period.start, Protocol.issued_at < period.end
        )
    )
    history = (
        await session.execute(
            select(
                func.count().filter(HistoryRequest.delivered_at.is_(None)),
                func.count().filter(
                    and_(HistoryRequest.delivered_at.is_(None), HistoryRequest.due_at < now)
                ),
            )
        )
    ).one()
    return {
        "pending": int(row[0]),
        "overdue": int(row[1]),
        "due_soon": int(row[2]),
        "due_within_days": params.due_within_days,
        "opened": int(opened or 0),
        "history_requests_pending": int(history[0]),
        "history_requests_overdue": int(history[1]),
    }


async def resolution(session: AsyncSession, params: ReportParams) -> dict[str, Any]:
    rows = (
        await session.execute(
            select(Protocol.issued_at, Protocol.resolved_at).where(
                Protocol.status.in_(ANSWERED_STATUSES),
                Protocol.resolved_at >= params.period.start,
                Protocol.resolved_at < params.period.end,
            )
        )
    ).all()
    values = [hours(r.resolved_at - r.issued_at) for r in rows]
    return {"count": len(values), "avg_hours": _r(mean(values)), "p90_hours": _r(p90(values))}


async def by_column(
    session: AsyncSession, params: ReportParams, column: Any, config: LifecycleConfig, kind: str
) -> list[dict[str, Any]]:
    now = params.now
    pending = Protocol.status.in_(PENDING_STATUSES)
    in_period = and_(
        Protocol.issued_at >= params.period.start, Protocol.issued_at < params.period.end
    )
    rows = (
        await session.execute(
            select(
                column,
                func.count(),
                func.count().filter(pending),
                func.count().filter(and_(pending, Protocol.due_at < now)),
            )
            .where(in_period)
            .group_by(column)
        )
    ).all()
    durations: dict[str | None, list[float]] = defaultdict(list)
    for code, opened_at, resolved_at in (
        await session.execute(
            select(column, Protocol.issued_at, Protocol.resolved_at).where(
                in_period, Protocol.status.in_(ANSWERED_STATUSES)
            )
        )
    ).all():
        durations[code].append(hours(resolved_at - opened_at))
    label = config.subject_label if kind == "subject" else config.department_label
    items = [
        {
            "code": code,
            "label": label(code) if code else "Não informado",
            "opened": int(opened),
            "answered": int(opened) - int(pend),
            "pending": int(pend),
            "overdue": int(over),
            "avg_resolution_hours": _r(mean(durations.get(code, []))),
        }
        for code, opened, pend, over in rows
    ]
    items.sort(key=lambda i: (-i["opened"], i["label"]))
    return items


async def by_agent(session: AsyncSession, params: ReportParams) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            select(
                ProtocolEvent.actor,
                ProtocolEvent.from_status,
                ProtocolEvent.to_status,
                ProtocolEvent.at,
                Protocol.issued_at,
            )
            .join(Protocol, Protocol.id == ProtocolEvent.protocol_id)
            .where(
                ProtocolEvent.kind == EventKind.STATUS.value,
                ProtocolEvent.at >= params.period.start,
                ProtocolEvent.at < params.period.end,
                ProtocolEvent.actor.notin_(SYSTEM_ACTORS),
            )
        )
    ).all()
    stats: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"status_changes": 0, "answered": 0, "durations": [], "assigned_pending": 0}
    )
    for actor, from_status, to_status, at, opened_at in rows:
        entry = stats[actor]
        entry["status_changes"] += 1
        if from_status in PENDING_STATUSES and to_status in ANSWERED_STATUSES:
            entry["answered"] += 1
            entry["durations"].append(hours(at - opened_at))
    for agent, count in (
        await session.execute(
            select(Protocol.agent, func.count())
            .where(Protocol.agent.is_not(None), Protocol.status.in_(PENDING_STATUSES))
            .group_by(Protocol.agent)
        )
    ).all():
        stats[cast(str, agent)]["assigned_pending"] = int(count)  # not NULL: filtered
    items = [
        {
            "agent": agent,
            "status_changes": s["status_changes"],
            "answered": s["answered"],
            "avg_resolution_hours": _r(mean(s["durations"])),
            "assigned_pending": s["assigned_pending"],
        }
        for agent, s in stats.items()
    ]
    items.sort(key=lambda i: (-i["answered"], -i["status_changes"], i["agent"]))
    return items


async def calls_per_hour(
    session: AsyncSession, params: ReportParams, tz: tzinfo
) -> list[dict[str, int]]:
    counts = [0] * 24
    result = await session.stream_scalars(
        select(Protocol.issued_at).where(
            Protocol.issued_at >= params.period.start, Protocol.issued_at < params.period.end
        )
    )
    async for opened_at in result:
        counts[opened_at.astimezone(tz).hour] += 1
    return [{"hour": h, "calls": c} for h, c in enumerate(counts)]


async def deadline_list(
    session: AsyncSession,
    params: ReportParams,
    kind: str,
    config: LifecycleConfig,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Pending requests (``pending``), past due (``overdue``) or due within N days
    (``due-soon``), soonest due first."""
    now = params.now
    query = select(Protocol).where(Protocol.status.in_(PENDING_STATUSES))
    if kind == "overdue":
        query = query.where(Protocol.due_at < now)
    elif kind == "due-soon":
        query = query.where(
            Protocol.due_at >= now,
            Protocol.due_at < now + timedelta(days=params.due_within_days),
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(case((Protocol.due_at.is_(None), 1), else_=0), Protocol.due_at, Protocol.id)
        .limit(limit)
        .offset(offset)
    )
    items = [
        {
            "number": p.number,
            "opened_at": iso(p.issued_at),
            "due_at": iso(p.due_at),
            "overdue_hours": _r(hours(now - p.due_at)) if p.due_at and p.due_at < now else None,
            "status": p.status,
            "status_label": status_label(p.status),
            "subject": p.subject,
            "subject_label": config.subject_label(p.subject) or None,
            "department": p.department,
            "department_label": config.department_label(p.department) or None,
            "agent": p.agent,
        }
        for p in rows
    ]
    return items, int(total or 0)


async def full_report(
    session: AsyncSession, params: ReportParams, config: LifecycleConfig
) -> dict[str, Any]:
    overdue, overdue_total = await deadline_list(session, params, "overdue", config, 20, 0)
    return {
        "generated_at": iso(params.now),
        "timezone": str(config.tz),
        "period": {"from": iso(params.period.start), "until": iso(params.period.end)},
        "totals": await totals(session, params),
        "resolution": await resolution(session, params),
        "by_subject": await by_column(session, params, Protocol.subject, config, "subject"),
        "by_department": await by_column(
            session, params, Protocol.department, config, "department"
        ),
        "by_agent": await by_agent(session, params),
        "calls_per_hour": await calls_per_hour(session, params, config.tz),
        "overdue_top": overdue,
        "overdue_total": overdue_total,
    }
