"""Statuses a request goes through, the moves allowed between them, and the
configurable lists (subjects, departments). Pure data: no database, no HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Status:
    code: str
    label_pt: str
    # No transition leaves it.
    final: bool = False
    # The request has its answer: the deadline clock stops (resolved_at is set).
    answered: bool = False
    # What the customer is told comes next (pt-BR; {due} and {department} filled in).
    next_step_pt: str = ""


STATUSES: tuple[Status, ...] = (
    Status(
        "open",
        "Aberto",
        next_step_pt="Sua solicitação foi registrada e será respondida até {due}.",
    ),
    Status(
        "forwarded",
        "Encaminhado ao setor responsável",
        next_step_pt="Sua solicitação foi encaminhada ao setor {department}, "
        "que vai respondê-la até {due}.",
    ),
    Status(
        "in_progress",
        "Em andamento",
        next_step_pt="Estamos analisando sua solicitação; a resposta será dada até {due}.",
    ),
    Status(
        "waiting_customer",
        "Aguardando informações do cliente",
        next_step_pt="Precisamos de informações suas para continuar. Ligue para o SAC "
        "e informe o número do protocolo.",
    ),
    Status(
        "resolved",
        "Resolvido",
        answered=True,
        next_step_pt="Sua solicitação foi concluída. Se não concordar com a solução, "
        "ligue para o SAC e informe o número do protocolo.",
    ),
    Status(
        "closed",
        "Encerrado",
        final=True,
        answered=True,
        next_step_pt="O atendimento deste protocolo foi encerrado.",
    ),
    Status(
        "cancelled",
        "Cancelado",
        final=True,
        answered=True,
        next_step_pt="Esta solicitação foi cancelada.",
    ),
)

BY_CODE: dict[str, Status] = {s.code: s for s in STATUSES}

# from -> the statuses it may move to. "resolved" may go back to "in_progress"
# (the customer disputes the solution); "closed" and "cancelled" are final.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("forwarded", "in_progress", "waiting_customer", "resolved", "cancelled"),
    "forwarded": ("in_progress", "waiting_customer", "resolved", "cancelled"),
    "in_progress": ("forwarded", "waiting_customer", "resolved", "cancelled"),
    "waiting_customer": ("in_progress", "forwarded", "resolved", "cancelled"),
    "resolved": ("closed", "in_progress"),
    "closed": (),
    "cancelled": (),
}

ANSWERED_STATUSES: tuple[str, ...] = tuple(s.code for s in STATUSES if s.answered)
PENDING_STATUSES: tuple[str, ...] = tuple(s.code for s in STATUSES if not s.answered)


def allowed_from(status: str) -> tuple[str, ...]:
    return TRANSITIONS.get(status, ())


def status_label(code: str | None) -> str:
    if code is None:
        return ""
    status = BY_CODE.get(code)
    return status.label_pt if status else code


@dataclass(frozen=True)
class Choice:
    """An item of a configurable list (subject, department): code and pt-BR label."""

    code: str
    label_pt: str


CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")

# Labels for subjects that profiles name without the operator listing them.
BUILTIN_SUBJECT_LABELS = {
    "high_complexity": "Procedimento de alta complexidade",
    "elective_admission": "Internação eletiva",
}


def parse_choices(items: Iterable[str], setting: str) -> tuple[Choice, ...]:
    """``["code:Label", ...]`` → choices; raises ValueError naming the bad item."""
    out: list[Choice] = []
    seen: set[str] = set()
    for item in items:
        code, _, label = str(item).partition(":")
        code, label = code.strip(), label.strip()
        if not CODE_RE.match(code):
            raise ValueError(
                f"{setting}: {code!r} is not a code (lowercase letters, digits, _; "
                "at most 48 characters)"
            )
        if code in seen:
            raise ValueError(f"{setting}: {code!r} is listed twice")
        seen.add(code)
        out.append(Choice(code, label or code))
    return tuple(out)


def choice_label(choices: Sequence[Choice], code: str | None) -> str:
    if code is None:
        return ""
    for choice in choices:
        if choice.code == code:
            return choice.label_pt
    return BUILTIN_SUBJECT_LABELS.get(code, code)
