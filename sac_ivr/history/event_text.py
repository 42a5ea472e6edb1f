"""What the customer reads, in the history of demands, about each timeline event.

``EVENT_TEXT`` has one entry per ``EventKind`` (a test checks it has no gaps): a new
kind of event needs its sentence here before it can be recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sac_ivr.lifecycle import statuses
from sac_ivr.lifecycle.config import LifecycleConfig
from sac_ivr.protocols.tables import ProtocolEvent
from sac_ivr.protocols.timeline import EventKind

FIELD_NAMES_PT = {
    "customer_document": "CPF/CNPJ",
    "customer_name": "nome",
    "customer_email": "e-mail",
    "customer_phone": "telefone",
}
CHANNEL_PT = {"sms": "SMS", "email": "E-mail"}

# The event, its ``data`` (never None) and the settings -> the sentence, or None when
# the event is for agents only.
EventText = Callable[[ProtocolEvent, dict[str, Any], LifecycleConfig], str | None]


def _status(e: ProtocolEvent, data: dict[str, Any], config: LifecycleConfig) -> str:
    text = (
        f"Situação alterada de “{statuses.status_label(e.from_status)}” para "
        f"“{statuses.status_label(e.to_status)}”"
    )
    if e.to_status == "forwarded" and e.department:
        text += f" (setor {config.department_label(e.department)})"
    return text


def _field(e: ProtocolEvent, data: dict[str, Any], config: LifecycleConfig) -> str | None:
    name = data.get("field")
    if name == "subject":
        return f"Assunto definido como “{config.subject_label(data.get('to'))}”"
    if name == "department":
        return f"Setor responsável: {config.department_label(data.get('to'))}"
    if name in FIELD_NAMES_PT:
        return f"Dados cadastrais atualizados ({FIELD_NAMES_PT[name]})"
    return None  # agent assignment, internal notes


def _notification(e: ProtocolEvent, data: dict[str, Any], config: LifecycleConfig) -> str:
    channel = CHANNEL_PT.get(data.get("channel", ""), "Mensagem")
    verb = "enviado" if e.kind == EventKind.NOTIFICATION_SENT else "não pôde ser enviado"
    return f"{channel} {verb} para {data.get('to') or 'o cliente'}"


def _fixed(text: str) -> EventText:
    return lambda e, data, config: text


EVENT_TEXT: dict[EventKind, EventText] = {
    EventKind.OPENED: _fixed("Protocolo aberto"),
    EventKind.STATUS: _status,
    EventKind.MENU_CHOICE: lambda e, data, config: (
        f"Opção escolhida no menu de atendimento: {data.get('choice', '')}"
    ),
    EventKind.FIELD: _field,
    EventKind.CANCELLATION_REGISTERED: _fixed(
        "Pedido de cancelamento registrado, com efeito imediato"
    ),
    EventKind.SMS_REQUESTED: _fixed("Envio do protocolo por SMS solicitado na ligação"),
    EventKind.NOTIFICATION_SENT: _notification,
    EventKind.NOTIFICATION_FAILED: _notification,
    EventKind.ANSWERED: _fixed("Ligação atendida pela central de atendimento"),
    EventKind.HISTORY_REQUESTED: _fixed("Histórico de demandas solicitado"),
    EventKind.ANONYMISED: _fixed("Dados pessoais anonimizados (prazo de guarda encerrado)"),
}


def describe_event(e: ProtocolEvent, config: LifecycleConfig) -> str | None:
    """What the customer reads about one timeline event (None: internal only). A kind
    this version does not know (a row from a newer one) is named as it is stored."""
    try:
        text = EVENT_TEXT[EventKind(e.kind)]
    except ValueError:
        return f"Registro: {e.kind}"
    return text(e, e.data or {}, config)
