"""Building a customer's history of demands, and tracking the requests for it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from sac_ivr.db.base import utcnow
from sac_ivr.history import document
from sac_ivr.history.tables import HistoryRequest
from sac_ivr.http.listing import iso
from sac_ivr.lifecycle import statuses
from sac_ivr.lifecycle.config import LifecycleConfig
from sac_ivr.notifications import services as notices
from sac_ivr.notifications.tables import OutboxMessage
from sac_ivr.protocols.tables import Protocol, ProtocolEvent

if TYPE_CHECKING:
    from sac_ivr.core import Core

DELIVERY_CHANNELS = ("email", "mail", "in_person", "other")

FIELD_NAMES_PT = {
    "customer_document": "CPF/CNPJ",
    "customer_name": "nome",
    "customer_email": "e-mail",
    "customer_phone": "telefone",
}
CHANNEL_PT = {"sms": "SMS", "email": "E-mail"}


class HistoryRequestNotFound(LookupError):
    pass


class AlreadyDelivered(Exception):
    pass


def install(core: Core) -> None:
    notices.DELIVERY_HOOKS["history"] = _delivered


async def _delivered(session: AsyncSession, row: OutboxMessage, delivered: bool) -> None:
    request_id = (row.data or {}).get("history_request_id")
    if not delivered or request_id is None:
        return
    request = await session.get(HistoryRequest, request_id)
    if request is not None and request.delivered_at is None:
        request.delivered_at = row.sent_at or utcnow()
        request.delivered_via = "email"
        request.delivered_by = "system"


def describe_event(e: ProtocolEvent, config: LifecycleConfig) -> str | None:
    """What the customer reads about one timeline event (None: internal only)."""
    data = e.data or {}
    if e.kind == "opened":
        return "Protocolo aberto"
    if e.kind == "status":
        text = (
            f"Situação alterada de “{statuses.status_label(e.from_status)}” para "
            f"“{statuses.status_label(e.to_status)}”"
        )
        if e.to_status == "forwarded" and e.department:
            text += f" (setor {config.department_label(e.department)})"
        return text
    if e.kind == "menu_choice":
        return f"Opção escolhida no menu de atendimento: {data.get('choice', '')}"
    if e.kind == "field":
        name = data.get("field")
        if name == "subject":
            return f"Assunto definido como “{config.subject_label(data.get('to'))}”"
        if name == "department":
            return f"Setor responsável: {config.department_label(data.get('to'))}"
        if name in FIELD_NAMES_PT:
            return f"Dados cadastrais atualizados ({FIELD_NAMES_PT[name]})"
        return None  # agent assignment, internal notes
    if e.kind == "cancellation_registered":
        return "Pedido de cancelamento registrado, com efeito imediato"
    if e.kind == "sms_requested":
        return "Envio do protocolo por SMS solicitado na ligação"
    if e.kind in ("notification_sent", "notification_failed"):
        channel = CHANNEL_PT.get(data.get("channel", ""), "Mensagem")
        verb = "enviado" if e.kind == "notification_sent" else "não pôde ser enviado"
        return f"{channel} {verb} para {data.get('to') or 'o cliente'}"
    if e.kind == "answered":  # the call log: an agent took the call
        return "Ligação atendida pela central de atendimento"
    if e.kind == "history_requested":
        return "Histórico de demandas solicitado"
    if e.kind == "anonymised":
        return "Dados pessoais anonimizados (prazo de guarda encerrado)"
    return f"Registro: {e.kind}"


async def build_history(
    session: AsyncSession,
    config: LifecycleConfig,
    company: str,
    *,
    phone: str | None = None,
    document_number: str | None = None,
) -> dict[str, Any]:
    """The history of demands of the customer with this phone and/or CPF/CNPJ."""
    conditions = []
    if phone:
        conditions += [Protocol.caller_e164 == phone, Protocol.customer_phone == phone]
    if document_number:
        conditions.append(Protocol.customer_document == document_number)
    if not conditions:
        raise ValueError("a phone or a CPF/CNPJ is needed")
    rows = await session.scalars(
        select(Protocol)
        .where(or_(*conditions))
        .options(selectinload(Protocol.events))
        .order_by(Protocol.issued_at.desc(), Protocol.id.desc())
    )
    protocols = []
    for p in rows:
        events = []
        for e in p.events:
            text = describe_event(e, config)
            if text is None:
                continue
            events.append(
                {
                    "at": iso(e.at),
                    "kind": e.kind,
                    "description": text,
                    "from_status": e.from_status,
                    "to_status": e.to_status,
                    "department": e.department,
                    "customer_note": e.customer_note,
                }
            )
        protocols.append(
            {
                "number": p.number,
                "opened_at": iso(p.issued_at),
                "channel": p.channel_kind,
                "subject": p.subject,
                "subject_label": config.subject_label(p.subject) or None,
                "status": p.status,
                "status_label": statuses.status_label(p.status),
                "department": p.department,
                "department_label": config.department_label(p.department) or None,
                "due_at": iso(p.due_at),
                "resolved_at": iso(p.resolved_at),
                "events": events,
            }
        )
    return {
        "company": company,
        "customer": {"phone": phone, "document": document_number},
        "generated_at": iso(utcnow()),
        "legal_basis": config.profile.title,
        "total": len(protocols),
        "protocols": protocols,
    }


async def create_request(
    core: Core,
    actor: str,
    *,
    phone: str | None,
    document_number: str | None,
    delivery: str,
    email: str | None = None,
    protocol_number: str | None = None,
) -> HistoryRequest:
    """Register the request (its due date from the legal profile) and, for e-mail
    delivery, queue the document in the outbox in the same transaction."""
    from sac_ivr.lifecycle.services import lifecycle_of

    config = lifecycle_of(core)
    now = utcnow()
    async with core.sessionmaker() as session, session.begin():
        protocol = None
        if protocol_number:
            protocol = await session.scalar(
                select(Protocol).where(Protocol.number == protocol_number)
            )
            if protocol is None:
                raise LookupError(f"protocol {protocol_number} not found")
        request = HistoryRequest(
            requested_at=now,
            requested_by=actor,
            phone_e164=phone,
            document=document_number,
            protocol_id=protocol.id if protocol else None,
            delivery=delivery,
            email=email,
            due_at=config.history_due(now),
        )
        session.add(request)
        await session.flush()
        if protocol is not None:
            session.add(
                ProtocolEvent(
                    protocol_id=protocol.id,
                    at=now,
                    actor=actor,
                    kind="history_requested",
                    data={"history_request_id": request.id, "delivery": delivery},
                )
            )
        if delivery == "email" and email and notices.email_enabled(core.settings):
            history = await build_history(
                session,
                config,
                core.settings.company_name,
                phone=phone,
                document_number=document_number,
            )
            session.add(
                OutboxMessage(
                    key=notices.new_key(),
                    protocol_id=None,
                    kind="history",
                    channel="email",
                    recipient=email,
                    subject=f"{core.settings.company_name} – seu histórico de demandas",
                    body=document.render_text(history, config.tz),
                    body_html=document.render_html(history, config.tz),
                    data={"history_request_id": request.id},
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    notices.wake_worker(core)
    return request


async def get_request(session: AsyncSession, request_id: int) -> HistoryRequest:
    request = await session.get(HistoryRequest, request_id)
    if request is None:
        raise HistoryRequestNotFound(request_id)
    return request


async def mark_delivered(core: Core, request_id: int, via: str, actor: str) -> HistoryRequest:
    async with core.sessionmaker() as session, session.begin():
        request = await session.get(HistoryRequest, request_id, with_for_update=True)
        if request is None:
            raise HistoryRequestNotFound(request_id)
        if request.delivered_at is not None:
            raise AlreadyDelivered(request_id)
        request.delivered_at = utcnow()
        request.delivered_via = via
        request.delivered_by = actor
    return request


async def list_requests(
    session: AsyncSession,
    *,
    pending_only: bool,
    overdue_at: datetime | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[HistoryRequest], int]:
    query = select(HistoryRequest)
    if pending_only or overdue_at is not None:
        query = query.where(HistoryRequest.delivered_at.is_(None))
    if overdue_at is not None:
        query = query.where(HistoryRequest.due_at < overdue_at)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(HistoryRequest.due_at, HistoryRequest.id).limit(limit).offset(offset)
    )
    return rows.all(), int(total or 0)
