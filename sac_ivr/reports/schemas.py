"""Report query parameters and CSV columns."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo

from aiohttp import web

from sac_ivr.db.base import utcnow
from sac_ivr.http.errors import bad_request
from sac_ivr.http.inputs import parse_datetime, parse_int
from sac_ivr.reports.services import Period, ReportParams

DEFAULT_DAYS = 30
MAX_PERIOD_DAYS = 366 * 2
DUE_WITHIN_DAYS_MAX = 365
# Report tables are small (one row per subject, agent, hour...) or lists a
# supervisor exports whole: a larger page than the other listings.
MAX_LIMIT = 10000
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


def parse_params(request: web.Request, tz: tzinfo) -> ReportParams:
    """``from``/``until`` (default: the last 30 days, today included),
    ``due_within_days`` (default 2)."""
    query = request.query
    now = utcnow()
    start = parse_datetime(query.get("from"), "from", tz)
    end = parse_datetime(query.get("until"), "until", tz, day_end=True)
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
    days = parse_int(query.get("due_within_days"), "due_within_days", 2, 0, DUE_WITHIN_DAYS_MAX)
    return ReportParams(period=Period(start, end), now=now, due_within_days=days)
