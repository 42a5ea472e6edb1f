"""The supervisors' report page (pt-BR): figures, SVG charts, tables, CSV links."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from html import escape
from typing import Any
from urllib.parse import urlencode

from sac_ivr.reports.charts import Segment, column_chart, stacked_bars

SEGMENTS = (
    Segment("Respondidas", "#16a34a"),
    Segment("Pendentes no prazo", "#f59e0b"),
    Segment("Vencidas", "#dc2626"),
)

STYLE = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 0;
       color: #1f2933; background: #f5f7fa; }
header { background: #1f2933; color: #fff; padding: .9rem 1.5rem; }
header h1 { margin: 0; font-size: 1.3rem; }
header p { margin: .2rem 0 0; color: #cbd2d9; font-size: .9rem; }
main { padding: 1rem 1.5rem 2rem; max-width: 1200px; margin: 0 auto; }
form { display: flex; gap: .8rem; align-items: end; flex-wrap: wrap; margin-bottom: 1rem; }
label { display: flex; flex-direction: column; font-size: .8rem; color: #52606d; }
input { font: inherit; padding: .25rem .4rem; }
button { font: inherit; padding: .3rem .9rem; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: .7rem; }
.kpi { background: #fff; border-radius: 8px; padding: .7rem .9rem; border-left: 5px solid #2563eb; }
.kpi.alert { border-left-color: #dc2626; }
.kpi.warn { border-left-color: #f59e0b; }
.kpi .value { font-size: 1.8rem; font-weight: 700; }
.kpi .name { font-size: .85rem; color: #52606d; }
.card { background: #fff; border-radius: 8px; padding: 1rem; margin-top: 1rem; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
@media (max-width: 900px) { .grid2 { grid-template-columns: 1fr; } }
table { width: 100%; border-collapse: collapse; font-size: .9rem; }
th, td { padding: .35rem .5rem; border-bottom: 1px solid #e4e7eb; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
h2 { font-size: 1.05rem; margin: 0 0 .6rem; }
.muted { color: #52606d; font-size: .85rem; }
a { color: #1d4ed8; }
@media print { form, .csv { display: none; } body { background: #fff; } }
"""


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


def _kpi(key: str, name: str, value: Any, shown: str | None = None, tone: str = "") -> str:
    return (
        f'<div class="kpi {tone}" data-kpi="{key}" data-value="{escape(str(value))}">'
        f'<div class="value">{escape(shown if shown is not None else str(value))}</div>'
        f'<div class="name">{escape(name)}</div></div>'
    )


def _table(headers: list[tuple[str, bool]], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f'<th class="{"n" if num else ""}">{escape(h)}</th>' for h, num in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="{"n" if num else ""}">{escape(cell)}</td>'
            for cell, (_, num) in zip(row, headers, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(headers)}" class="muted">Sem dados</td></tr>')
    rows_html = "".join(body)
    return (
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table>'
    )


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
    kpis = "".join(
        [
            _kpi("pending", "Pendentes (agora)", t["pending"], tone="warn"),
            _kpi("overdue", "Vencidas (agora)", t["overdue"], tone="alert"),
            _kpi("due_soon", f"Vencem em até {days} dia(s)", t["due_soon"], tone="warn"),
            _kpi("opened", "Abertas no período", t["opened"]),
            _kpi("resolved", "Concluídas no período", r["count"]),
            _kpi(
                "avg_hours", "Tempo médio de resolução", r["avg_hours"], fmt_hours(r["avg_hours"])
            ),
            _kpi("p90_hours", "Resolução – 90% em até", r["p90_hours"], fmt_hours(r["p90_hours"])),
            _kpi(
                "history_overdue",
                f"Históricos vencidos (de {t['history_requests_pending']} pendentes)",
                t["history_requests_overdue"],
                tone="alert" if t["history_requests_overdue"] else "",
            ),
        ]
    )
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

    def csv(name: str) -> str:
        params = {k: v for k, v in query.items() if k in ("from", "until", "due_within_days")}
        params["format"] = "csv"
        return f'<a href="/api/v1/reports/{name}?{escape(urlencode(params))}">{name}.csv</a>'

    links = " · ".join(
        csv(n)
        for n in (
            "by-subject",
            "by-department",
            "by-agent",
            "calls-per-hour",
            "pending",
            "overdue",
            "due-soon",
        )
    )
    q = {k: escape(v) for k, v in query.items()}
    return f"""<!doctype html>
<html lang="pt-BR"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>Relatório do SAC – {escape(company)}</title><style>{STYLE}</style></head>
<body><header><h1>Relatório do SAC – {escape(company)}</h1>
<p>Período: <span id="period">{start} a {end}</span> · prazos: {escape(profile_title)} ·
gerado em {fmt_moment(report["generated_at"], tz)}</p></header>
<main>
<form method="get" action="/reports">
<label>De <input type="date" name="from" value="{q.get("from", "")}"></label>
<label>Até <input type="date" name="until" value="{q.get("until", "")}"></label>
<label>Vencendo em (dias) <input type="number" min="0" max="365" name="due_within_days"
 value="{days}"></label>
<button type="submit">Atualizar</button></form>
<section class="kpis">{kpis}</section>
<section class="card">{hours_chart}</section>
<section class="grid2">
<div class="card">{subject_chart}</div>
<div class="card">{department_chart}</div>
</section>
<section class="card"><h2>Por assunto (abertas no período)</h2>
{_table(group_headers, group_rows(report["by_subject"]), "table-subject")}</section>
<section class="card"><h2>Por setor (abertas no período)</h2>
{_table(group_headers, group_rows(report["by_department"]), "table-department")}</section>
<section class="card"><h2>Produtividade por atendente (no período)</h2>{agents}</section>
<section class="card"><h2>Vencidas – as {len(report["overdue_top"])} mais atrasadas de
{report["overdue_total"]}</h2>{overdue}</section>
<p class="csv muted">Exportar (CSV): {links}</p>
<p class="muted">Pendentes, vencidas e a vencer: situação agora, de todas as solicitações.
Tempos de resolução: solicitações concluídas no período (90%: percentil 90).</p>
</main></body></html>"""
