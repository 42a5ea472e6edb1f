"""OpenAPI description of the reports routes (merged in http/openapi.py)."""

from sac_ivr.http.openapi import (
    DATE_DESCRIPTION,
    error_responses,
    json_body,
    list_params,
    page_body,
    ref,
)
from sac_ivr.reports.schemas import DUE_WITHIN_DAYS_MAX, MAX_LIMIT, MAX_PERIOD_DAYS, REPORT_NAMES

PERIOD_PARAMS = [
    {
        "name": "from",
        "in": "query",
        "schema": {"type": "string"},
        "description": "YYYY-MM-DD (local day, included) or an ISO date-time (local time "
        "without an offset). Default: 30 days before until. " + DATE_DESCRIPTION,
    },
    {
        "name": "until",
        "in": "query",
        "schema": {"type": "string"},
        "description": "YYYY-MM-DD (local day, included) or an ISO date-time (excluded). "
        f"Default: today included. At most {MAX_PERIOD_DAYS} days after from. " + DATE_DESCRIPTION,
    },
    {
        "name": "due_within_days",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": DUE_WITHIN_DAYS_MAX, "default": 2},
        "description": "Horizon of 'due soon'.",
    },
]

DEFINITIONS = (
    "pending/overdue/due_soon: all requests not yet answered, as of now. by_subject and "
    "by_department: requests opened in the period, with how many are answered, pending "
    "and overdue now, and their mean resolution hours. resolution: requests answered in "
    "the period, mean and 90th percentile (nearest rank) hours from opening to answer. "
    "by_agent: status changes made in the period per agent, requests they answered, mean "
    "hours to that answer, pending requests assigned to them now. calls_per_hour: "
    "requests opened in the period (one per call) by local hour of day."
)

SCHEMAS = {
    "Report": {
        "type": "object",
        "description": DEFINITIONS,
        "properties": {
            "period": {"type": "object"},
            "totals": {
                "type": "object",
                "properties": {
                    k: {"type": "integer"}
                    for k in (
                        "pending",
                        "overdue",
                        "due_soon",
                        "due_within_days",
                        "opened",
                        "history_requests_pending",
                        "history_requests_overdue",
                    )
                },
            },
            "resolution": {
                "type": "object",
                "properties": {
                    "count": {"type": "integer"},
                    "avg_hours": {"type": ["number", "null"]},
                    "p90_hours": {"type": ["number", "null"]},
                },
            },
            "by_subject": {"type": "array", "items": {"type": "object"}},
            "by_department": {"type": "array", "items": {"type": "object"}},
            "by_agent": {"type": "array", "items": {"type": "object"}},
            "calls_per_hour": {"type": "array", "items": {"type": "object"}},
            "overdue_top": {"type": "array", "items": {"type": "object"}},
            "overdue_total": {"type": "integer"},
        },
    }
}

PATHS = {
    "/api/v1/reports/summary": {
        "get": {
            "summary": "Every report figure at once (what the report page shows)",
            "description": DEFINITIONS,
            "parameters": PERIOD_PARAMS,
            "security": [{"bearer": []}],
            "responses": {
                "200": json_body(ref("Report"), "The report"),
                **error_responses(400, 401, 403),
            },
        }
    },
    "/api/v1/reports/{name}": {
        "get": {
            "summary": "One report table, as JSON or CSV",
            "description": "pending, overdue, due-soon: requests not yet answered, soonest "
            "due first. by-subject, by-department, by-agent, calls-per-hour: see summary. "
            + DEFINITIONS,
            "parameters": [
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": list(REPORT_NAMES)},
                },
                *PERIOD_PARAMS,
                *list_params(max_limit=MAX_LIMIT),
            ],
            "security": [{"bearer": []}],
            "responses": {
                "200": page_body(
                    {"type": "object", "required": ["items", "total", "limit", "offset"]},
                    "{items, total, limit, offset}, or CSV with format=csv",
                ),
                **error_responses(400, 401, 403, 404),
            },
        }
    },
    "/reports": {
        "get": {
            "summary": "The report page for supervisors (HTML with SVG charts, pt-BR)",
            "description": "Token in the Authorization header or the sac_token cookie.",
            "parameters": PERIOD_PARAMS,
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "The page",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
                **error_responses(400, 401, 403),
            },
        }
    },
}
