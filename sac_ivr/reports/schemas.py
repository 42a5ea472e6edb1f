"""Report query parameters and CSV columns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, WithJsonSchema, model_validator
from pydantic.json_schema import SkipJsonSchema

from sac_ivr.db.base import utcnow
from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import PageOf, RequestModel, ResponseModel
from sac_ivr.http.errors import bad_request, not_found
from sac_ivr.http.fields import DATE_DESCRIPTION, QueryChoice, QueryInt, Reads
from sac_ivr.http.inputs import parse_datetime, parse_int
from sac_ivr.http.listing import DEFAULT_LIMIT, FORMATS, MAX_OFFSET
from sac_ivr.lifecycle.services import lifecycle_of
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


def read_params(query: Mapping[str, Any], tz: tzinfo) -> ReportParams:
    """``from``/``until`` (default: the last 30 days, today included),
    ``due_within_days`` (default 2)."""
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


# ------------------------------------------------------------------ declared shapes

DEFINITIONS = (
    "pending/overdue/due_soon: all requests not yet answered, as of now. by_subject and "
    "by_department: requests opened in the period, with how many are answered, pending "
    "and overdue now, and their mean resolution hours. resolution: requests answered in "
    "the period, mean and 90th percentile (nearest rank) hours from opening to answer. "
    "by_agent: status changes made in the period per agent, requests they answered, mean "
    "hours to that answer, pending requests assigned to them now. calls_per_hour: "
    "requests opened in the period (one per call) by local hour of day."
)


class ReportQuery(RequestModel):
    """The period and the 'due soon' horizon, read together by :func:`read_params`
    in the service's time zone (the defaults depend on each other)."""

    from_: Annotated[datetime | None, WithJsonSchema({"type": "string"})] = Field(
        default=None,
        description="YYYY-MM-DD (local day, included) or an ISO date-time (local time "
        "without an offset). Default: 30 days before until. " + DATE_DESCRIPTION,
    )
    until: Annotated[datetime | None, WithJsonSchema({"type": "string"})] = Field(
        default=None,
        description="YYYY-MM-DD (local day, included) or an ISO date-time (excluded). "
        f"Default: today included. At most {MAX_PERIOD_DAYS} days after from. " + DATE_DESCRIPTION,
    )
    due_within_days: Annotated[
        int, WithJsonSchema({"type": "integer", "minimum": 0, "maximum": DUE_WITHIN_DAYS_MAX})
    ] = Field(default=2, description="Horizon of 'due soon'.")
    now: SkipJsonSchema[datetime | None] = None

    @model_validator(mode="before")
    @classmethod
    def _period(cls, data: Any, info: ValidationInfo) -> Any:
        context = info.context or {}
        tz = context.get("tz") or lifecycle_of(core_of(context["request"])).tz
        params = read_params(data, tz)
        return {
            **data,
            "from": params.period.start,
            "until": params.period.end,
            "due_within_days": params.due_within_days,
            "now": params.now,
        }

    def params(self) -> ReportParams:
        # Set by _period, which runs first: never None here.
        assert self.from_ is not None and self.until is not None and self.now is not None
        return ReportParams(
            period=Period(self.from_, self.until),
            now=self.now,
            due_within_days=self.due_within_days,
        )


class ReportTableQuery(ReportQuery):
    """The period, then the page (up to :data:`MAX_LIMIT` rows)."""

    limit: Annotated[int, QueryInt(1, MAX_LIMIT)] = DEFAULT_LIMIT
    offset: Annotated[int, QueryInt(0, MAX_OFFSET)] = 0
    format: Annotated[Literal["json", "csv"], QueryChoice(FORMATS)] = "json"


def _report_name(raw: str | None, name: str) -> str:
    if raw not in REPORT_NAMES:
        raise not_found(f"no report {raw!r}; reports: summary, {', '.join(REPORT_NAMES)}")
    return raw


class ReportPath(RequestModel):
    name: Annotated[str, Reads(_report_name, {"enum": list(REPORT_NAMES)})]


class ReportRow(ResponseModel):
    """One row of a report table (its columns: the CSV's)."""

    model_config = ConfigDict(extra="allow")


class ReportTablePage(PageOf[ReportRow]):
    pass


Number = int | float


class Totals(ResponseModel):
    pending: int
    overdue: int
    due_soon: int
    due_within_days: int
    opened: int
    history_requests_pending: int
    history_requests_overdue: int


class Resolution(ResponseModel):
    count: int
    avg_hours: Number | None
    p90_hours: Number | None


class Report(ResponseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"description": DEFINITIONS})

    period: dict[str, Any]
    totals: Totals
    resolution: Resolution
    by_subject: list[dict[str, Any]]
    by_department: list[dict[str, Any]]
    by_agent: list[dict[str, Any]]
    calls_per_hour: list[dict[str, Any]]
    overdue_top: list[dict[str, Any]]
    overdue_total: int
