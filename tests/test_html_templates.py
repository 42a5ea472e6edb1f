"""The HTML pages come from Jinja2 templates with autoescape: text a customer or an
agent typed (a note, a subject label, the company name) is never markup."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sac_ivr.history import document
from sac_ivr.reports import page

TZ = ZoneInfo("America/Sao_Paulo")
SCRIPT = "<script>alert('x')</script>"
AT = "2026-03-02T13:00:00+00:00"


def test_history_page_escapes_what_people_typed() -> None:
    history = {
        "company": f"ACME {SCRIPT}",
        "customer": {"document": "52998224725", "phone": "+5511987654321"},
        "generated_at": AT,
        "total": 1,
        "legal_basis": "Decreto 11.034/2022",
        "protocols": [
            {
                "number": "20260302000017",
                "opened_at": AT,
                "subject_label": SCRIPT,
                "status_label": "Aberto",
                "department_label": None,
                "resolved_at": None,
                "due_at": AT,
                "events": [{"at": AT, "description": "Aberto", "customer_note": SCRIPT}],
            }
        ],
    }
    html = document.render_html(history, TZ)
    assert "<script>" not in html
    assert html.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") == 4
    assert html.startswith("<!doctype html>") and 'data-protocol="20260302000017"' in html
    assert "@media print" in html and "***.982.247-**" in html


def _report(label: str) -> dict:
    group = {
        "label": label,
        "opened": 1,
        "answered": 0,
        "pending": 1,
        "overdue": 1,
        "avg_resolution_hours": None,
    }
    return {
        "period": {"from": AT, "until": AT},
        "generated_at": AT,
        "totals": {
            "pending": 1,
            "overdue": 1,
            "due_soon": 0,
            "due_within_days": 2,
            "opened": 1,
            "history_requests_pending": 0,
            "history_requests_overdue": 0,
        },
        "resolution": {"count": 0, "avg_hours": None, "p90_hours": None},
        "calls_per_hour": [{"hour": h, "calls": 0} for h in range(24)],
        "by_subject": [group],
        "by_department": [group],
        "by_agent": [
            {
                "agent": label,
                "status_changes": 1,
                "answered": 0,
                "avg_resolution_hours": None,
                "assigned_pending": 1,
            }
        ],
        "overdue_top": [
            {
                "number": "20260302000017",
                "opened_at": AT,
                "due_at": AT,
                "overdue_hours": 3.5,
                "status_label": "Aberto",
                "subject_label": label,
                "department_label": None,
            }
        ],
        "overdue_total": 1,
    }


def test_report_page_escapes_labels_names_and_the_query() -> None:
    html = page.render(_report(SCRIPT), TZ, f"ACME {SCRIPT}", "CDC", {"from": f'"><b>{SCRIPT}'})
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html
    assert 'data-kpi="overdue" data-value="1"' in html
    assert 'id="table-overdue"' in html and "3,5 h" in html
    assert "<svg" in html  # the charts are markup the page keeps
