"""What the customer reads: pt-BR SMS and e-mail texts for each kind of notice.

Texts are rendered when the notice is queued, so every attempt sends the same
bytes (and a resend after a crash is recognisably the same message).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sac_ivr.lifecycle import statuses

SMS_MAX = 306  # two concatenated GSM-7 parts


@dataclass(frozen=True)
class Notice:
    """Everything a template may say about one protocol at one moment."""

    company: str
    number: str
    opened_at: datetime
    status: str
    subject_label: str = ""
    department_label: str = ""
    due_at: datetime | None = None
    customer_name: str | None = None
    customer_note: str | None = None
    effective_at: datetime | None = None  # cancellation requests
    tz: tzinfo | None = None

    def local(self, value: datetime) -> datetime:
        return value.astimezone(self.tz) if self.tz else value

    def date(self, value: datetime) -> str:
        return self.local(value).strftime("%d/%m/%Y")

    def time(self, value: datetime) -> str:
        return self.local(value).strftime("%Hh%M")

    @property
    def status_label(self) -> str:
        return statuses.status_label(self.status)

    @property
    def next_step(self) -> str:
        status = statuses.BY_CODE.get(self.status)
        if status is None or not status.next_step_pt:
            return ""
        due = self.date(self.due_at) if self.due_at else "o prazo legal"
        return status.next_step_pt.format(
            due=due, department=self.department_label or "responsável"
        )


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str


def sms_text(kind: str, n: Notice, ascii_only: bool = True) -> str:
    opened = f"{n.date(n.opened_at)} às {n.time(n.opened_at)}"
    if kind in ("opened", "sms_request"):
        text = f"{n.company}: seu protocolo de atendimento é {n.number}, de {opened}."
        if n.subject_label:
            text += f" Assunto: {n.subject_label}."
        if n.due_at:
            text += f" Resposta até {n.date(n.due_at)}."
    elif kind == "cancellation":
        at = n.effective_at or n.opened_at
        text = (
            f"{n.company}: pedido de cancelamento registrado no protocolo {n.number} "
            f"em {n.date(at)} às {n.time(at)}, com efeito imediato."
        )
    else:  # status change
        text = f"{n.company}: protocolo {n.number} ({opened}) - {n.status_label}."
        if n.customer_note:
            text += f" {n.customer_note.strip()}"
        if n.next_step:
            text += f" {n.next_step}"
    if ascii_only:
        text = fold_accents(text)
    if len(text) > SMS_MAX:
        text = text[: SMS_MAX - 3].rstrip() + "..."
    return text


def email(kind: str, n: Notice) -> Rendered:
    greeting = f"Olá, {n.customer_name.split()[0]}," if n.customer_name else "Olá,"
    if kind in ("opened", "sms_request"):
        headline = "Sua solicitação foi registrada no nosso SAC."
        subject = f"{n.company} – protocolo {n.number} registrado"
    elif kind == "cancellation":
        at = n.effective_at or n.opened_at
        headline = (
            f"Seu pedido de cancelamento foi registrado em {n.date(at)} às {n.time(at)} "
            "e tem efeito imediato (Decreto 6.523/2008, art. 18). Guarde esta mensagem "
            "como comprovante."
        )
        subject = f"{n.company} – comprovante de cancelamento, protocolo {n.number}"
    else:
        headline = f"A situação da sua solicitação mudou para: {n.status_label}."
        subject = f"{n.company} – protocolo {n.number}: {n.status_label}"
    lines = [greeting, "", headline, ""]
    lines.append(f"Protocolo: {n.number}")
    lines.append(f"Aberto em: {n.date(n.opened_at)} às {n.time(n.opened_at)}")
    if n.subject_label:
        lines.append(f"Assunto: {n.subject_label}")
    lines.append(f"Situação: {n.status_label}")
    if n.department_label:
        lines.append(f"Setor: {n.department_label}")
    if n.due_at and n.status in statuses.PENDING_STATUSES:
        lines.append(f"Prazo de resposta: até {n.date(n.due_at)}")
    if n.customer_note:
        lines += ["", "Mensagem do atendimento:", n.customer_note.strip()]
    if n.next_step:
        lines += ["", "O que acontece agora:", n.next_step]
    lines += [
        "",
        "Informe o número do protocolo sempre que falar com o SAC: ele identifica "
        "o seu atendimento.",
        "",
        n.company,
        "Mensagem automática: por favor, não responda a este e-mail.",
    ]
    return Rendered(subject=subject, text="\n".join(lines) + "\n")


def fold_accents(text: str) -> str:
    """ASCII for SMS: "Reclamação" → "Reclamacao", "–" → "-"."""
    text = text.replace("–", "-").replace("—", "-").replace("º", "o").replace("ª", "a")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c) and ord(c) < 128)
