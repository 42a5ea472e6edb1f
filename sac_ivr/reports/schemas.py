"""Report query parameters and CSV columns."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, tzinfo

from aiohttp import web

from sac_ivr.db.base import utcnow
from sac_ivr.http.errors import bad_request
from sac_ivr.http.listing import parse_int
from sac_ivr.reports.services import Period, ReportParams

DEFAULT_DAYS = 30
MAX_PERIOD_DAYS = 366 * 2
TABLES = ("by-subject", "by-department", "by-agent", "calls-per-hour")
LISTS = ("pending", "overdue", "due-soon")
REPORT_NAMES = (*TABLES, *LISTS)

CSV_COLUMNS = {
    "by-subject": (
        "code",
        "label",
        "opened",
        "answered",
        "pending",
        "overdue",
        "avg_resolution_hours",
    ),
    "by-agent": ("agent", "status_changes", "answered", "avg_resolution_hours", "assigned_pending"),
    "calls-per-hour": ("hour", "calls"),
    "pending": (
        "number",
        "opened_at",
        "due_at",
        "overdue_hours",
        "status",
        "subject",
        "department",
        "agent",
    ),
}
CSV_COLUMNS["by-department"] = CSV_COLUMNS["by-subject"]
CSV_COLUMNS["overdue"] = CSV_COLUMNS["pending"]
CSV_COLUMNS["due-soon"] = CSV_COLUMNS["pending"]


def _bound(raw: str | None, name: str, tz: tzinfo, end: bool) -> datetime | None:
    """A local date (whole day; ``until`` inclusive) or an exact ISO date-time."""
    if not raw:
        return None
    raw = raw.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        try:
            day = datetime.strptime(raw, "%Y-%m-%d").date()
        except ValueError:
            raise bad_request(f"{name} is not a date", field=name) from None
        if end:
            day += timedelta(days=1)
        return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(
            f"{name} must be YYYY-MM-DD or an ISO 8601 date-time", field=name
        ) from None
    return (value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(UTC)


def parse_params(request: web.Request, tz: tzinfo) -> ReportParams:
    """``from``/``until`` (default: the last 30 days, today included),
    ``due_within_days`` (default 2)."""
    query = request.query
    now = utcnow()
    start = _bound(query.get("from"), "from", tz, end=False)
    end = _bound(query.get("until"), "until", tz, end=True)
    if end is None:
        today = now.astimezone(tz).date()
        end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    if start is None:
        local_end = end.astimezone(tz)
        start = (local_end - timedelta(days=DEFAULT_DAYS)).astimezone(UTC)
    if start >= end:
        raise bad_request("from must be before until", field="from")
    if end - start > timedelta(days=MAX_PERIOD_DAYS):
        raise bad_request(f"the period may span at most {MAX_PERIOD_DAYS} days", field="until")
    days = parse_int(query.get("due_within_days"), "due_within_days", 2, 0, 365)
    return ReportParams(period=Period(start, end), now=now, due_within_days=days)
