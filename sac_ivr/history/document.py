"""The history of demands as a document the customer reads: plain text (e-mail
body) and a printable HTML page (pt-BR)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from html import escape
from typing import Any

from sac_ivr.phones import mask_phone


def mask_document(doc: str | None) -> str | None:
    if not doc:
        return None
    if len(doc) == 11:
        return f"***.{doc[3:6]}.{doc[6:9]}-**"
    if len(doc) == 14:
        return f"**.{doc[2:5]}.{doc[5:8]}/{doc[8:12]}-**"
    return "*" * len(doc)


def _when(value: str | None, tz: tzinfo, with_time: bool = True) -> str:
    if not value:
        return "—"
    local = datetime.fromisoformat(value).astimezone(tz)
    return local.strftime("%d/%m/%Y %Hh%M" if with_time else "%d/%m/%Y")


def _who(history: dict[str, Any]) -> str:
    customer = history["customer"]
    parts = []
    if customer.get("document"):
        parts.append(f"CPF/CNPJ {mask_document(customer['document'])}")
    if customer.get("phone"):
        parts.append(f"telefone {mask_phone(customer['phone'])}")
    return " e ".join(parts)


def render_text(history: dict[str, Any], tz: tzinfo) -> str:
    lines = [
        f"{history['company']} – Histórico de demandas",
        f"Cliente: {_who(history)}",
        f"Emitido em: {_when(history['generated_at'], tz)}",
        f"Solicitações: {history['total']}",
        "",
    ]
    for p in history["protocols"]:
        lines.append(f"Protocolo {p['number']} – aberto em {_when(p['opened_at'], tz)}")
        lines.append(f"  Assunto: {p['subject_label'] or 'não informado'}")
        lines.append(f"  Situação: {p['status_label']}")
        if p["resolved_at"]:
            lines.append(f"  Concluído em: {_when(p['resolved_at'], tz)}")
        elif p["due_at"]:
            lines.append(f"  Prazo de resposta: {_when(p['due_at'], tz, with_time=False)}")
        for e in p["events"]:
            lines.append(f"  - {_when(e['at'], tz)}: {e['description']}")
            if e["customer_note"]:
                lines.append(f"      Resposta: {e['customer_note']}")
        lines.append("")
    lines.append("Documento gratuito (Decreto 11.034/2022, art. 12).")
    return "\n".join(lines) + "\n"


STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1f2933;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
.meta { color: #52606d; margin-top: 0; }
section.protocol { border: 1px solid #cbd2d9; border-radius: 6px; padding: .8rem 1rem;
                   margin: 1rem 0; break-inside: avoid; }
section.protocol h2 { font-size: 1.1rem; margin: 0 0 .4rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem .8rem; margin: 0 0 .6rem; }
dt { color: #52606d; }
dd { margin: 0; }
table { width: 100%; border-collapse: collapse; font-size: .92rem; }
th, td { text-align: left; padding: .3rem .4rem; border-top: 1px solid #e4e7eb;
         vertical-align: top; }
th { color: #52606d; font-weight: 600; }
.note { display: block; color: #334e68; margin-top: .15rem; }
footer { color: #52606d; font-size: .85rem; margin-top: 2rem; }
@media print { body { margin: 0; max-width: none; } .noprint { display: none; } }
"""


def render_html(history: dict[str, Any], tz: tzinfo) -> str:
    e = escape
    out = [
        "<!doctype html>",
        '<html lang="pt-BR"><head><meta charset="utf-8">',
        f"<title>Histórico de demandas – {e(history['company'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Histórico de demandas – {e(history['company'])}</h1>",
        f'<p class="meta">Cliente: {e(_who(history))} · Emitido em '
        f"{e(_when(history['generated_at'], tz))} · "
        f'<span data-total="{history["total"]}">{history["total"]} solicitação(ões)</span></p>',
        '<p class="noprint"><button onclick="window.print()">Imprimir</button></p>',
    ]
    if not history["protocols"]:
        out.append("<p>Nenhuma solicitação encontrada.</p>")
    for p in history["protocols"]:
        out.append(f'<section class="protocol" data-protocol="{e(p["number"])}">')
        out.append(f"<h2>Protocolo {e(p['number'])}</h2><dl>")
        rows = [
            ("Aberto em", _when(p["opened_at"], tz)),
            ("Assunto", p["subject_label"] or "não informado"),
            ("Situação", p["status_label"]),
        ]
        if p["department_label"]:
            rows.append(("Setor", p["department_label"]))
        if p["resolved_at"]:
            rows.append(("Concluído em", _when(p["resolved_at"], tz)))
        elif p["due_at"]:
            rows.append(("Prazo de resposta", _when(p["due_at"], tz, with_time=False)))
        out += [f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in rows]
        out.append("</dl><table><thead><tr><th>Data</th><th>O que aconteceu</th></tr></thead>")
        out.append("<tbody>")
        for ev in p["events"]:
            note = (
                f'<span class="note">Resposta: {e(ev["customer_note"])}</span>'
                if ev["customer_note"]
                else ""
            )
            out.append(
                f"<tr><td>{e(_when(ev['at'], tz))}</td><td>{e(ev['description'])}{note}</td></tr>"
            )
        out.append("</tbody></table></section>")
    out.append(
        "<footer>Documento gratuito, com todas as informações e respostas registradas "
        f"(Decreto 11.034/2022, art. 12). Prazos: {e(history['legal_basis'])}.</footer>"
    )
    out.append("</body></html>")
    return "\n".join(out)
