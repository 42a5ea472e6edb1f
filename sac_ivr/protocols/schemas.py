"""How protocols look over HTTP, and how their query parameters are read."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from typing import Annotated, Any

from pydantic import ConfigDict, Field, RootModel, WithJsonSchema, model_validator

from sac_ivr.db.base import utcnow
from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import (
    CsvExport,
    ListQuery,
    PageOf,
    RequestModel,
    ResponseModel,
)
from sac_ivr.http.errors import bad_request
from sac_ivr.http.fields import DocumentQuery, PhoneQuery, QueryBool, QueryInt, Reads, Timestamp
from sac_ivr.http.inputs import query_text
from sac_ivr.http.listing import iso
from sac_ivr.lifecycle.statuses import status_label
from sac_ivr.phones import mask_phone
from sac_ivr.protocols.numbering import InvalidProtocolNumber
from sac_ivr.protocols.services import ProtocolFilter
from sac_ivr.protocols.tables import Protocol, ProtocolEvent

STATUS_MAX = 24
_STATUS_NAME = re.compile(rf"[a-z_]{{1,{STATUS_MAX}}}")
DUE_WITHIN_DAYS_MAX = 3650


def local_day(value: datetime | None, tz: tzinfo) -> str | None:
    """The date (YYYY-MM-DD) of an instant in the service's time zone."""
    return value.astimezone(tz).date().isoformat() if value is not None else None


def public_view(p: Protocol, tz: tzinfo) -> dict[str, Any]:
    """What anyone holding the number may see: the status and the dates, to the day.
    No subject, no notes, no personal data (see ``verified_view``)."""
    return {
        "number": p.number,
        "status": p.status,
        "status_label": status_label(p.status),
        "opened_on": local_day(p.issued_at, tz),
        "updated_on": local_day(p.updated_at, tz),
        "due_on": local_day(p.due_at, tz),
        "verified": False,
    }


def verified_view(p: Protocol, tz: tzinfo, subject_label: str) -> dict[str, Any]:
    """The public view plus what the second factor opens: the subject and the notes
    written for the customer (never the internal ones)."""
    notes = [
        {
            "on": local_day(e.at, tz),
            "status": e.to_status,
            "status_label": status_label(e.to_status) or None,
            "note": e.customer_note,
        }
        for e in p.events
        if e.customer_note
    ]
    return {
        **public_view(p, tz),
        "verified": True,
        "subject": p.subject,
        "subject_label": subject_label or None,
        "notes": notes,
    }


def agent_view(p: Protocol) -> dict[str, Any]:
    return {
        "number": p.number,
        "status": p.status,
        "opened_at": iso(p.issued_at),
        "updated_at": iso(p.updated_at),
        "subject": p.subject,
        "due_at": iso(p.due_at),
        "caller_number": p.caller_number,
        "caller_e164": p.caller_e164,
        "caller_masked": mask_phone(p.caller_e164 or p.caller_number),
        "caller_name": p.caller_name,
        "called_number": p.called_number,
        "uniqueid": p.uniqueid,
        "linkedid": p.linkedid,
        "channel": p.channel,
        "department": p.department,
        "agent": p.agent,
        "customer_document": p.customer_document,
        "customer_name": p.customer_name,
        "customer_email": p.customer_email,
        "customer_phone": p.customer_phone,
        "notes": p.notes,
        "resolved_at": iso(p.resolved_at),
    }


def event_view(e: ProtocolEvent) -> dict[str, Any]:
    return {
        "at": iso(e.at),
        "actor": e.actor,
        "kind": e.kind,
        "from_status": e.from_status,
        "to_status": e.to_status,
        "department": e.department,
        "customer_note": e.customer_note,
        "internal_note": e.internal_note,
        "data": e.data,
    }


class PublicNote(ResponseModel):
    on: str = Field(json_schema_extra={"format": "date"})
    status: str | None
    status_label: str | None
    note: str


class ProtocolPublic(ResponseModel):
    """A protocol looked up without a token: the status and the dates, to the day in
    the service's time zone. With a second factor (verified): also the subject and
    the notes written for the customer."""

    number: str
    status: str
    status_label: str = Field(description="pt-BR")
    opened_on: str = Field(json_schema_extra={"format": "date"})
    updated_on: str = Field(json_schema_extra={"format": "date"})
    due_on: str | None = Field(default=None, json_schema_extra={"format": "date"})
    verified: bool
    subject: str | None = Field(default=None, description="Verified only.")
    subject_label: str | None = Field(default=None, description="Verified only.")
    notes: list[PublicNote] = Field(
        default_factory=list, description="Verified only: the notes written for the customer."
    )


class TimelineEvent(ResponseModel):
    at: Timestamp
    actor: str | None
    kind: str
    from_status: str | None
    to_status: str | None
    department: str | None
    customer_note: str | None
    internal_note: str | None
    data: dict[str, Any] | None


class ProtocolAgent(ResponseModel):
    """The whole record, as agents see it. Other features add their sections to one
    protocol's record (e.g. "calls", "notifications")."""

    model_config = ConfigDict(extra="allow")

    number: str
    status: str
    opened_at: Timestamp
    updated_at: Timestamp
    subject: str | None
    due_at: Timestamp | None
    caller_number: str | None
    caller_e164: str | None
    caller_masked: str | None
    caller_name: str | None
    called_number: str | None
    uniqueid: str | None
    linkedid: str | None
    channel: str | None
    department: str | None
    agent: str | None
    customer_document: str | None
    customer_name: str | None
    customer_email: str | None
    customer_phone: str | None
    notes: str | None
    resolved_at: Timestamp | None
    events: list[TimelineEvent] | None = None


class ProtocolPage(PageOf[ProtocolAgent]):
    pass


class ProtocolAnswer(RootModel[ProtocolAgent | ProtocolPublic]):
    """The lookup's answer: the agent's record with a token, the public view without."""


PROTOCOLS_CSV = CsvExport(
    columns=(
        "number",
        "status",
        "opened_at",
        "updated_at",
        "subject",
        "due_at",
        "caller_e164",
        "customer_document",
        "department",
        "agent",
    ),
    filename="protocols.csv",
)
LIST_COLUMNS = PROTOCOLS_CSV.columns


class NumberPath(RequestModel):
    """A protocol number in the path (checked by the handler: the public lookup
    counts and limits a malformed number before refusing it)."""

    number: Annotated[
        str,
        WithJsonSchema({"type": "string", "pattern": "^[0-9]{1,64}$"}),
    ] = Field(
        description="Protocol number: digits only; the default format's last digit is a "
        "Damm check digit and is verified before any lookup."
    )


def _checked_number(raw: str | None, name: str, context: dict[str, Any]) -> str:
    try:
        return core_of(context["request"]).protocol_format.validate(raw or "")
    except InvalidProtocolNumber as exc:
        raise bad_request(str(exc), code="invalid_protocol_number") from None


class CheckedNumberPath(RequestModel):
    """A protocol number in the path, checked (format and check digit) before any
    database work."""

    number: Annotated[
        str,
        Reads(_checked_number, {"type": "string", "pattern": "^[0-9]{1,64}$"}, with_context=True),
    ] = Field(description=NumberPath.model_fields["number"].description)


class LookupQuery(RequestModel):
    """The public lookup's second factor, read by protocols/public.py after its rate
    limits (so that a malformed factor still counts as a guess)."""

    verify: Annotated[str | None, WithJsonSchema({"type": "string", "pattern": "^[0-9]{4}$"})] = (
        Field(
            default=None,
            description="Without a token: the last 4 digits of the customer's phone or CPF/CNPJ.",
        )
    )
    expires: Annotated[
        str | None, WithJsonSchema({"type": "string", "pattern": "^[0-9]{1,12}$"})
    ] = Field(default=None, description="Signed link: its expiry (Unix time).")
    signature: Annotated[
        str | None, WithJsonSchema({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"})
    ] = Field(default=None, description="Signed link: its signature.")


def _status_name(raw: str | None, name: str) -> str | None:
    status = query_text(raw, "status", STATUS_MAX)
    if status and not _STATUS_NAME.fullmatch(status):
        raise bad_request("status is not a status name", field="status")
    return status or None


class ProtocolQuery(ListQuery):
    """``GET /api/v1/protocols``: the page, then the filters."""

    phone: PhoneQuery = Field(default=None, description="Any Brazilian format; compared in E.164.")
    document: DocumentQuery = Field(default=None, description="CPF or CNPJ, check digits verified.")
    status: Annotated[
        str | None,
        Reads(_status_name, {"type": "string", "pattern": f"^[a-z_]{{1,{STATUS_MAX}}}$"}),
    ] = None
    overdue: Annotated[bool, QueryBool()] = Field(
        default=False,
        description="true: only requests not yet answered whose due date passed.",
    )
    due_within_days: Annotated[int | None, QueryInt(0, DUE_WITHIN_DAYS_MAX)] = Field(
        default=None,
        description="Only requests not yet answered, due from now to N days ahead. "
        "Not with overdue=true.",
    )

    @model_validator(mode="after")
    def _one_due_filter(self) -> ProtocolQuery:
        if self.overdue and self.due_within_days is not None:
            raise bad_request(
                "use overdue=true or due_within_days, not both", field="due_within_days"
            )
        return self

    def to_filter(self) -> ProtocolFilter:
        return ProtocolFilter(
            phone_e164=self.phone,
            document=self.document,
            status=self.status,
            **due_filter(self.overdue, self.due_within_days),
        )


def due_filter(is_overdue: bool, within: int | None) -> dict[str, Any]:
    """``overdue=true``: pending and past due; ``due_within_days=N``: pending and due
    from now to N days ahead. Both look only at requests not yet answered."""
    now = utcnow()
    if is_overdue:
        return {"pending_only": True, "due_before": now}
    if within is not None:
        return {"pending_only": True, "due_after": now, "due_before": now + timedelta(days=within)}
    return {}
