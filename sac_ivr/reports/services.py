"""Report queries. Every figure is aggregated in SQL, from an indexed range (the
period on ``issued_at``, ``resolved_at`` or ``protocol_events (kind, at)``; the
requests not yet answered through the partial index ``ix_protocols_pending_due``):
no Python loop over the rows of the period.

Definitions (also in the OpenAPI descriptions of reports/schemas.py):

- *now* figures: ``pending`` (not yet answered), ``overdue`` (pending, due date
  passed), ``due_soon`` (pending, due within N days) — over all requests;
- *period* tables (``by_subject``, ``by_department``): requests OPENED in the period,
  with how many of them are answered / pending / overdue now;
- ``resolution``: requests ANSWERED in the period (resolved_at in it): count, mean
  and 90th percentile (nearest rank) of resolved_at − opened_at, in hours;
- ``by_agent``: status changes made in the period by each agent (token name), how
  many answered a request (moved it from a pending to an answered status), the mean
  hours from opening to that answer, and the pending requests assigned to them now;
- ``calls_per_hour``: requests opened in the period (one per call) by local hour.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, case, func, literal_column, select
from sqlalchemy import Integer as SqlInteger
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sac_ivr.history.tables import HistoryRequest
from sac_ivr.http.listing import iso
from sac_ivr.lifecycle.config import LifecycleConfig
from sac_ivr.lifecycle.statuses import ANSWERED_STATUSES, PENDING_STATUSES, status_label
from sac_ivr.protocols.tables import PENDING, Protocol, ProtocolEvent, status_in
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


def _in(column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    return status_in(column, tuple(values))


ANSWERED = _in(Protocol.status, ANSWERED_STATUSES)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _seconds(session: AsyncSession, later: Any, earlier: Any) -> ColumnElement[float]:
    """``later - earlier`` in seconds, in SQL."""
    if _dialect(session) == "postgresql":
        return cast(ColumnElement[float], func.extract("epoch", later - earlier))
    return cast(ColumnElement[float], (func.julianday(later) - func.julianday(earlier)) * 86400.0)


def _hours(seconds: Any) -> float | None:
    return None if seconds is None else float(seconds) / 3600


async def totals(session: AsyncSession, params: ReportParams) -> dict[str, Any]:
    now = params.now
    soon_until = now + timedelta(days=params.due_within_days)
    row = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(Protocol.due_at < now),
                func.count().filter(and_(Protocol.due_at >= now, Protocol.due_at < soon_until)),
            )
            .select_from(Protocol)
            .where(PENDING)
        )
    ).one()
    period = params.period
    opened = await session.scalar(
        select(func.count())
        .select_from(Protocol)
        .where(Protocol.issued_at >= period.start, Protocol.issued_at < period.end)
    )
    history = (
        await session.execute(
            select(func.count(), func.count().filter(HistoryRequest.due_at < now)).where(
                HistoryRequest.delivered_at.is_(None)
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
    duration = _seconds(session, Protocol.resolved_at, Protocol.issued_at)
    answered_in_period = and_(
        ANSWERED,
        Protocol.resolved_at >= params.period.start,
        Protocol.resolved_at < params.period.end,
    )
    count, total = (
        await session.execute(
            select(func.count(), func.sum(duration)).select_from(Protocol).where(answered_in_period)
        )
    ).one()
    count = int(count or 0)
    if not count:
        return {"count": 0, "avg_hours": None, "p90_hours": None}
    rank = max(math.ceil(0.9 * count) - 1, 0)  # nearest rank, as p90()
    if _dialect(session) == "postgresql":
        worst = await session.scalar(
            select(func.percentile_disc(0.9).within_group(duration)).where(answered_in_period)
        )
    else:
        worst = await session.scalar(
            select(duration)
            .select_from(Protocol)
            .where(answered_in_period)
            .order_by(duration)
            .offset(rank)
            .limit(1)
        )
    return {
        "count": count,
        "avg_hours": _r(_hours(float(total) / count)),
        "p90_hours": _r(_hours(worst)),
    }


@dataclass
class _Group:
    opened: int = 0
    pending: int = 0
    overdue: int = 0
    answered_n: int = 0  # answered ones with both dates (the mean's count)
    answered_s: float = 0.0  # their resolution seconds, summed


async def _period_groups(
    session: AsyncSession, params: ReportParams
) -> dict[tuple[str | None, str | None], _Group]:
    """Requests opened in the period, by (subject, department): one indexed range scan
    that both the subject and the department tables add up."""
    now = params.now
    duration = _seconds(session, Protocol.resolved_at, Protocol.issued_at)
    answered_duration = case((ANSWERED, duration), else_=None)
    rows = (
        await session.execute(
            select(
                Protocol.subject,
                Protocol.department,
                func.count(),
                func.count().filter(PENDING),
                func.count().filter(and_(PENDING, Protocol.due_at < now)),
                func.count(answered_duration),
                func.sum(answered_duration),
            )
            .where(
                Protocol.issued_at >= params.period.start,
                Protocol.issued_at < params.period.end,
            )
            .group_by(Protocol.subject, Protocol.department)
        )
    ).all()
    return {
        (subject, department): _Group(
            int(opened), int(pend), int(over), int(n or 0), float(secs or 0.0)
        )
        for subject, department, opened, pend, over, n, secs in rows
    }


def _by_key(
    groups: dict[tuple[str | None, str | None], _Group], config: LifecycleConfig, kind: str
) -> list[dict[str, Any]]:
    index = 0 if kind == "subject" else 1
    merged: dict[str | None, _Group] = defaultdict(_Group)
    for key, group in groups.items():
        into = merged[key[index]]
        into.opened += group.opened
        into.pending += group.pending
        into.overdue += group.overdue
        into.answered_n += group.answered_n
        into.answered_s += group.answered_s
    label = config.subject_label if kind == "subject" else config.department_label
    items: list[dict[str, Any]] = [
        {
            "code": code,
            "label": label(code) if code else "Não informado",
            "opened": g.opened,
            "answered": g.opened - g.pending,
            "pending": g.pending,
            "overdue": g.overdue,
            "avg_resolution_hours": _r(
                _hours(g.answered_s / g.answered_n) if g.answered_n else None
            ),
        }
        for code, g in merged.items()
    ]
    items.sort(key=lambda i: (-i["opened"], i["label"]))
    return items


async def by_column(
    session: AsyncSession, params: ReportParams, column: Any, config: LifecycleConfig, kind: str
) -> list[dict[str, Any]]:
    """``kind`` is "subject" or "department" (``column`` names the same column)."""
    return _by_key(await _period_groups(session, params), config, kind)


def _agent_filters(params: ReportParams) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """(status changes by agents in the period, those that answered a request)."""
    answers = and_(
        _in(ProtocolEvent.from_status, PENDING_STATUSES),
        _in(ProtocolEvent.to_status, ANSWERED_STATUSES),
    )
    in_period = and_(
        # Written out, as the partial index's WHERE (ix_protocol_events_status_at).
        ProtocolEvent.kind == literal_column(f"'{EventKind.STATUS.value}'"),
        ProtocolEvent.at >= params.period.start,
        ProtocolEvent.at < params.period.end,
        ProtocolEvent.actor.notin_(SYSTEM_ACTORS),
    )
    return in_period, answers


async def _agent_changes(session: AsyncSession, params: ReportParams) -> list[Any]:
    """(actor, status changes, answers) from the partial index alone."""
    in_period, answers = _agent_filters(params)
    return list(
        (
            await session.execute(
                select(ProtocolEvent.actor, func.count(), func.count().filter(answers))
                .where(in_period)
                .group_by(ProtocolEvent.actor)
            )
        ).all()
    )


async def _agent_answer_seconds(session: AsyncSession, params: ReportParams) -> list[Any]:
    """(actor, mean seconds from opening to the answer): the opening dates are read
    for the answers only."""
    in_period, answers = _agent_filters(params)
    duration = _seconds(session, ProtocolEvent.at, Protocol.issued_at)
    return list(
        (
            await session.execute(
                select(ProtocolEvent.actor, func.avg(duration))
                .join(Protocol, Protocol.id == ProtocolEvent.protocol_id)
                .where(in_period, answers)
                .group_by(ProtocolEvent.actor)
            )
        ).all()
    )


async def _agent_pending(session: AsyncSession) -> list[Any]:
    """(agent, pending requests assigned now) from the pending partial index."""
    return list(
        (
            await session.execute(
                select(Protocol.agent, func.count())
                .where(PENDING, Protocol.agent.is_not(None))
                .group_by(Protocol.agent)
            )
        ).all()
    )


def _agent_items(
    changes: list[Any], seconds: list[Any], pending: list[Any]
) -> list[dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"status_changes": 0, "answered": 0, "avg": None, "assigned_pending": 0}
    )
    for actor, count, answered in changes:
        stats[actor]["status_changes"] = int(count)
        stats[actor]["answered"] = int(answered)
    for actor, secs in seconds:
        stats[actor]["avg"] = _hours(secs)
    for agent, count in pending:
        stats[str(agent)]["assigned_pending"] = int(count)  # not NULL: filtered
    items = [
        {
            "agent": agent,
            "status_changes": s["status_changes"],
            "answered": s["answered"],
            "avg_resolution_hours": _r(s["avg"]),
            "assigned_pending": s["assigned_pending"],
        }
        for agent, s in stats.items()
    ]
    items.sort(key=lambda i: (-i["answered"], -i["status_changes"], i["agent"]))
    return items


async def by_agent(session: AsyncSession, params: ReportParams) -> list[dict[str, Any]]:
    return _agent_items(
        await _agent_changes(session, params),
        await _agent_answer_seconds(session, params),
        await _agent_pending(session),
    )


async def calls_per_hour(
    session: AsyncSession, params: ReportParams, tz: tzinfo
) -> list[dict[str, int]]:
    counts = [0] * 24
    in_period = and_(
        Protocol.issued_at >= params.period.start, Protocol.issued_at < params.period.end
    )
    if _dialect(session) == "postgresql" and hasattr(tz, "key"):
        local_hour = func.extract("hour", func.timezone(tz.key, Protocol.issued_at))
        for hour, count in (
            await session.execute(
                select(local_hour, func.count()).where(in_period).group_by(local_hour)
            )
        ).all():
            counts[int(hour)] += int(count)
    else:
        # SQLite has no time zones: counts per UTC quarter hour (every zone's offset is
        # a whole number of quarter hours; at most 96 a day), each quarter turned into
        # its local hour here. The text is cut ("YYYY-MM-DD HH" and the minutes), not
        # parsed: strftime() per row costs more than the rest of the query.
        hour_text = func.substr(Protocol.issued_at, 1, 13)
        quarter = sql_cast(func.substr(Protocol.issued_at, 15, 2), SqlInteger) / 15
        for utc_hour, q, count in (
            await session.execute(
                select(hour_text, quarter, func.count())
                .where(in_period)
                .group_by(hour_text, quarter)
            )
        ).all():
            at = datetime.fromisoformat(f"{utc_hour}:00+00:00") + timedelta(minutes=15 * int(q))
            counts[at.astimezone(tz).hour] += int(count)
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
    (``due-soon``), soonest due first (those with no due date last).

    Two queries, each in the order of the partial index (due_at, id): the dated ones,
    then, for ``pending``, the undated ones by id."""
    now = params.now
    dated = select(Protocol).where(PENDING, Protocol.due_at.is_not(None))
    if kind == "overdue":
        dated = dated.where(Protocol.due_at < now)
    elif kind == "due-soon":
        dated = dated.where(
            Protocol.due_at >= now,
            Protocol.due_at < now + timedelta(days=params.due_within_days),
        )
    dated_total = int(await session.scalar(select(func.count()).select_from(dated.subquery())) or 0)
    rows: list[Protocol] = []
    if offset < dated_total:
        rows.extend(
            await session.scalars(
                dated.order_by(Protocol.due_at, Protocol.id).limit(limit).offset(offset)
            )
        )
    total = dated_total
    if kind == "pending":
        undated = select(Protocol).where(PENDING, Protocol.due_at.is_(None))
        total += int(
            await session.scalar(select(func.count()).select_from(undated.subquery())) or 0
        )
        if len(rows) < limit and offset + len(rows) < total:
            rows.extend(
                await session.scalars(
                    undated.order_by(Protocol.id)
                    .limit(limit - len(rows))
                    .offset(max(offset - dated_total, 0))
                )
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
    return items, total


async def full_report(
    session: AsyncSession, params: ReportParams, config: LifecycleConfig
) -> dict[str, Any]:
    overdue, overdue_total = await deadline_list(session, params, "overdue", config, 20, 0)
    groups = await _period_groups(session, params)
    return {
        "generated_at": iso(params.now),
        "timezone": str(config.tz),
        "period": {"from": iso(params.period.start), "until": iso(params.period.end)},
        "totals": await totals(session, params),
        "resolution": await resolution(session, params),
        "by_subject": _by_key(groups, config, "subject"),
        "by_department": _by_key(groups, config, "department"),
        "by_agent": await by_agent(session, params),
        "calls_per_hour": await calls_per_hour(session, params, config.tz),
        "overdue_top": overdue,
        "overdue_total": overdue_total,
    }


async def full_report_concurrently(
    reader: async_sessionmaker[AsyncSession], params: ReportParams, config: LifecycleConfig
) -> dict[str, Any]:
    """:func:`full_report`, its queries in five sessions at once (both cores of the
    database work on one report). Each figure is as consistent as before: every
    statement sees the data as of its own start (READ COMMITTED, or SQLite's WAL)."""

    async def each(*steps: Callable[[AsyncSession], Awaitable[Any]]) -> list[Any]:
        async with reader() as session:
            return [await step(session) for step in steps]

    (
        (changes,),
        (answer_seconds,),
        (groups, assigned),
        (hourly, answered),
        (overdue_page, figures),
    ) = await asyncio.gather(
        each(lambda s: _agent_changes(s, params)),
        each(lambda s: _agent_answer_seconds(s, params)),
        each(lambda s: _period_groups(s, params), _agent_pending),
        each(lambda s: calls_per_hour(s, params, config.tz), lambda s: resolution(s, params)),
        each(
            lambda s: deadline_list(s, params, "overdue", config, 20, 0),
            lambda s: totals(s, params),
        ),
    )
    overdue, overdue_total = overdue_page
    return {
        "generated_at": iso(params.now),
        "timezone": str(config.tz),
        "period": {"from": iso(params.period.start), "until": iso(params.period.end)},
        "totals": figures,
        "resolution": answered,
        "by_subject": _by_key(groups, config, "subject"),
        "by_department": _by_key(groups, config, "department"),
        "by_agent": _agent_items(changes, answer_seconds, assigned),
        "calls_per_hour": hourly,
        "overdue_top": overdue,
        "overdue_total": overdue_total,
    }
