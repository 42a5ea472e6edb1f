"""The history of demands as a document the customer reads: plain text (e-mail
body) and a printable HTML page (pt-BR)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from jinja2 import Environment, PackageLoader

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


TEMPLATES = Environment(
    loader=PackageLoader("sac_ivr.history", "templates"),
    autoescape=True,
    keep_trailing_newline=True,
)


def render_html(history: dict[str, Any], tz: tzinfo) -> str:
    """The printable page (``templates/history.html``); every value is escaped."""
    protocols = []
    for p in history["protocols"]:
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
        events = [
            {
                "at": _when(ev["at"], tz),
                "description": ev["description"],
                "customer_note": ev["customer_note"],
            }
            for ev in p["events"]
        ]
        protocols.append({"number": p["number"], "rows": rows, "events": events})
    return TEMPLATES.get_template("history.html").render(
        company=history["company"],
        who=_who(history),
        generated_at=_when(history["generated_at"], tz),
        total=history["total"],
        protocols=protocols,
        legal_basis=history["legal_basis"],
    )
