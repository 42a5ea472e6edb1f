"""The supervisors' report page (pt-BR): figures, SVG charts, tables, CSV links."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from sac_ivr.reports.charts import Segment, column_chart, stacked_bars

SEGMENTS = (
    Segment("Respondidas", "#16a34a"),
    Segment("Pendentes no prazo", "#f59e0b"),
    Segment("Vencidas", "#dc2626"),
)

TEMPLATES = Environment(
    loader=PackageLoader("sac_ivr.reports", "templates"),
    autoescape=True,
    keep_trailing_newline=False,
)
CSV_REPORTS = (
    "by-subject",
    "by-department",
    "by-agent",
    "calls-per-hour",
    "pending",
    "overdue",
    "due-soon",
)


def fmt_hours(value: float | None) -> str:
    if value is None:
        return "—"
    text = f"{value:.1f}".replace(".", ",")
    return f"{text} h"


def fmt_day(value: str, tz: tzinfo, minus_one: bool = False) -> str:
    moment = datetime.fromisoformat(value).astimezone(tz)
    if minus_one:
        moment -= timedelta(microseconds=1)
    return moment.strftime("%d/%m/%Y")


def fmt_moment(value: str, tz: tzinfo) -> str:
    return datetime.fromisoformat(value).astimezone(tz).strftime("%d/%m/%Y às %Hh%M")


def _kpi(key: str, name: str, value: Any, shown: str | None = None, tone: str = "") -> dict:
    return {
        "key": key,
        "name": name,
        "value": str(value),
        "shown": shown if shown is not None else str(value),
        "tone": tone,
    }


def _table(headers: list[tuple[str, bool]], rows: list[list[str]], table_id: str) -> dict:
    return {"id": table_id, "headers": headers, "rows": rows}


def _breakdown(items: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    return [(i["label"], [i["answered"], i["pending"] - i["overdue"], i["overdue"]]) for i in items]


def render(
    report: dict[str, Any], tz: tzinfo, company: str, profile_title: str, query: dict[str, str]
) -> str:
    t, r = report["totals"], report["resolution"]
    period = report["period"]
    start = fmt_day(period["from"], tz)
    end = fmt_day(period["until"], tz, minus_one=True)
    days = t["due_within_days"]
    kpis = [
        _kpi("pending", "Pendentes (agora)", t["pending"], tone="warn"),
        _kpi("overdue", "Vencidas (agora)", t["overdue"], tone="alert"),
        _kpi("due_soon", f"Vencem em até {days} dia(s)", t["due_soon"], tone="warn"),
        _kpi("opened", "Abertas no período", t["opened"]),
        _kpi("resolved", "Concluídas no período", r["count"]),
        _kpi("avg_hours", "Tempo médio de resolução", r["avg_hours"], fmt_hours(r["avg_hours"])),
        _kpi("p90_hours", "Resolução – 90% em até", r["p90_hours"], fmt_hours(r["p90_hours"])),
        _kpi(
            "history_overdue",
            f"Históricos vencidos (de {t['history_requests_pending']} pendentes)",
            t["history_requests_overdue"],
            tone="alert" if t["history_requests_overdue"] else "",
        ),
    ]
    hours_chart = column_chart(
        [(f"{c['hour']:02d}", c["calls"]) for c in report["calls_per_hour"]],
        title="Ligações por hora do dia (protocolos abertos no período)",
        chart_id="chart-calls-per-hour",
    )
    subject_chart = stacked_bars(
        _breakdown(report["by_subject"]), SEGMENTS, title="Por assunto", chart_id="chart-subject"
    )
    department_chart = stacked_bars(
        _breakdown(report["by_department"]),
        SEGMENTS,
        title="Por setor",
        chart_id="chart-department",
    )
    group_headers = [
        ("", False),
        ("Abertas", True),
        ("Respondidas", True),
        ("Pendentes", True),
        ("Vencidas", True),
        ("Tempo médio", True),
    ]

    def group_rows(items: list[dict[str, Any]]) -> list[list[str]]:
        return [
            [
                i["label"],
                str(i["opened"]),
                str(i["answered"]),
                str(i["pending"]),
                str(i["overdue"]),
                fmt_hours(i["avg_resolution_hours"]),
            ]
            for i in items
        ]

    agents = _table(
        [
            ("Atendente", False),
            ("Mudanças de situação", True),
            ("Solicitações respondidas", True),
            ("Tempo médio até a resposta", True),
            ("Pendentes atribuídas", True),
        ],
        [
            [
                a["agent"],
                str(a["status_changes"]),
                str(a["answered"]),
                fmt_hours(a["avg_resolution_hours"]),
                str(a["assigned_pending"]),
            ]
            for a in report["by_agent"]
        ],
        "table-agents",
    )
    overdue = _table(
        [
            ("Protocolo", False),
            ("Aberto em", False),
            ("Prazo", False),
            ("Atraso", True),
            ("Situação", False),
            ("Assunto", False),
            ("Setor", False),
        ],
        [
            [
                o["number"],
                fmt_day(o["opened_at"], tz),
                fmt_day(o["due_at"], tz),
                fmt_hours(o["overdue_hours"]),
                o["status_label"],
                o["subject_label"] or "—",
                o["department_label"] or "—",
            ]
            for o in report["overdue_top"]
        ],
        "table-overdue",
    )

    params = {k: v for k, v in query.items() if k in ("from", "until", "due_within_days")}
    params["format"] = "csv"
    csv_links = [(n, f"/api/v1/reports/{n}?{urlencode(params)}") for n in CSV_REPORTS]
    return TEMPLATES.get_template("report.html").render(
        company=company,
        profile_title=profile_title,
        start=start,
        end=end,
        generated_at=fmt_moment(report["generated_at"], tz),
        query=query,
        days=days,
        kpis=kpis,
        # The charts escape every value they write (reports/charts.py).
        hours_chart=Markup(hours_chart),
        subject_chart=Markup(subject_chart),
        department_chart=Markup(department_chart),
        by_subject=_table(group_headers, group_rows(report["by_subject"]), "table-subject"),
        by_department=_table(
            group_headers, group_rows(report["by_department"]), "table-department"
        ),
        agents=agents,
        overdue=overdue,
        overdue_shown=len(report["overdue_top"]),
        overdue_total=report["overdue_total"],
        csv_links=csv_links,
    )
