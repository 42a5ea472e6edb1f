"""History requests over HTTP: views and body/query parsing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import ConfigDict, Field, ValidationInfo, WithJsonSchema, model_validator

from sac_ivr.db.base import utcnow
from sac_ivr.history.services import DELIVERY_CHANNELS
from sac_ivr.history.tables import HistoryRequest as HistoryRequestRow
from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import (
    BodyModel,
    CsvExport,
    ListQuery,
    PageOf,
    RequestModel,
    ResponseModel,
)
from sac_ivr.http.errors import bad_request
from sac_ivr.http.fields import PathId, QueryBool, Reads, Timestamp
from sac_ivr.http.inputs import (
    MAX_INPUT,
    document_param,
    email_param,
    parse_choice,
    phone_param,
    reject_unknown,
)
from sac_ivr.protocols.numbering import InvalidProtocolNumber, ProtocolFormat


class HistoryRequest(ResponseModel):
    id: int
    requested_at: Timestamp
    requested_by: str
    phone: str | None
    document: str | None
    delivery: str
    email: str | None
    due_at: Timestamp = Field(
        description="From the legal profile: 5 calendar days (11.034), 72 h (6.523, ANS)."
    )
    overdue: bool
    delivered_at: Timestamp | None
    delivered_via: str | None
    delivered_by: str | None


class HistoryRequestPage(PageOf[HistoryRequest]):
    pass


def request_view(r: HistoryRequestRow) -> HistoryRequest:
    now = utcnow()
    return HistoryRequest(
        id=r.id,
        requested_at=r.requested_at,
        requested_by=r.requested_by,
        phone=r.phone_e164,
        document=r.document,
        delivery=r.delivery,
        email=r.email,
        due_at=r.due_at,
        overdue=r.delivered_at is None and r.due_at < now,
        delivered_at=r.delivered_at,
        delivered_via=r.delivered_via,
        delivered_by=r.delivered_by,
    )


HISTORY_REQUESTS_CSV = CsvExport(
    columns=(
        "id",
        "requested_at",
        "requested_by",
        "phone",
        "document",
        "delivery",
        "due_at",
        "overdue",
        "delivered_at",
        "delivered_via",
    ),
    filename="history-requests.csv",
)
LIST_COLUMNS = HISTORY_REQUESTS_CSV.columns
DATE_TIME: dict[str, Any] = {"format": "date-time"}


class HistoryEvent(ResponseModel):
    model_config = ConfigDict(extra="allow")

    at: str | None = Field(default=None, json_schema_extra=DATE_TIME)
    kind: str | None = None
    description: str | None = None
    customer_note: str | None = None


class HistoryProtocol(ResponseModel):
    model_config = ConfigDict(extra="allow")

    number: str
    opened_at: str | None = Field(default=None, json_schema_extra=DATE_TIME)
    subject: str | None = None
    subject_label: str | None = None
    status: str | None = None
    status_label: str | None = None
    due_at: str | None = None
    resolved_at: str | None = None
    events: list[HistoryEvent] = Field(default_factory=list)


class History(ResponseModel):
    """Every request of the customer, newest first, with every change and reply the
    customer may read (internal notes left out)."""

    model_config = ConfigDict(extra="allow")

    company: str
    customer: dict[str, Any]
    generated_at: str = Field(json_schema_extra=DATE_TIME)
    legal_basis: str
    total: int
    protocols: list[HistoryProtocol]


HTML_CONTENT = {"text/html": {"schema": {"type": "string"}}}
FORMAT_DESCRIPTION = "html: a printable pt-BR document (the browser prints it to PDF)."
FORMAT_SCHEMA = {"enum": ["json", "html"], "default": "json", "description": FORMAT_DESCRIPTION}


@dataclass(frozen=True)
class Customer:
    phone: str | None
    document: str | None


def parse_customer(source: Any, *, from_body: bool) -> Customer:
    """``phone`` and/or ``document`` (at least one), validated and normalised."""
    phone_raw = source.get("phone")
    doc_raw = source.get("document")
    for name, value in (("phone", phone_raw), ("document", doc_raw)):
        if value is not None and (not isinstance(value, str) or len(value) > 40):
            raise bad_request(f"{name} must be a string of at most 40 characters", field=name)
    phone = phone_param(phone_raw)
    doc = document_param(doc_raw)
    if phone is None and doc is None:
        raise bad_request("give the customer's phone or CPF/CNPJ", field="phone")
    return Customer(phone, doc)


REQUEST_FIELDS = ("phone", "document", "delivery", "email", "protocol")


def parse_request_body(body: dict[str, Any], fmt: ProtocolFormat) -> dict[str, Any]:
    reject_unknown(body, REQUEST_FIELDS)
    customer = parse_customer(body, from_body=True)
    delivery = body.get("delivery", "email")
    if delivery not in DELIVERY_CHANNELS:
        raise bad_request(
            f"delivery must be one of {', '.join(DELIVERY_CHANNELS)}", field="delivery"
        )
    email = body.get("email")
    if email is not None:
        if not isinstance(email, str):
            raise bad_request("email is not an e-mail address", field="email")
        email = email_param(email, field="email") if email.strip() else None
    if delivery == "email" and not email:
        raise bad_request("delivery by e-mail needs the address", field="email")
    protocol = body.get("protocol")
    if protocol is not None:
        if not isinstance(protocol, str):
            raise bad_request("protocol must be a string", field="protocol")
        try:
            protocol = fmt.validate(protocol)
        except InvalidProtocolNumber as exc:
            raise bad_request(str(exc), field="protocol") from None
    return {
        "phone": customer.phone,
        "document_number": customer.document,
        "delivery": delivery,
        "email": email,
        "protocol_number": protocol,
    }


def _format(raw: str | None, name: str) -> str:
    return parse_choice(raw, "format", ("json", "html"), "json") or "json"


class HistoryQuery(RequestModel):
    """``GET /api/v1/history``: the format, then the customer (phone and/or
    document, read together as :func:`parse_customer` does)."""

    format: Annotated[str, Reads(_format, FORMAT_SCHEMA)] = "json"
    phone: Annotated[str | None, WithJsonSchema({"type": "string"})] = Field(
        default=None,
        description="Any Brazilian format; matches the calling number and the phone "
        "given to an agent.",
    )
    document: Annotated[str | None, WithJsonSchema({"type": "string", "maxLength": MAX_INPUT})] = (
        Field(default=None, description="CPF/CNPJ")
    )

    @model_validator(mode="before")
    @classmethod
    def _customer(cls, data: Any) -> Any:
        data = dict(data)
        data["format"] = _format(data.get("format"), "format")
        customer = parse_customer(data, from_body=False)
        return {**data, "phone": customer.phone, "document": customer.document}


class FormatQuery(RequestModel):
    format: Annotated[str, Reads(_format, FORMAT_SCHEMA)] = "json"


class RequestPath(RequestModel):
    id: PathId


class ListFlagsQuery(ListQuery):
    pending: Annotated[bool, QueryBool()] = False
    overdue: Annotated[bool, QueryBool()] = False


class HistoryRequestBody(BodyModel):
    """phone and/or document; email required for delivery=email (the document is then
    sent through the outbox and the request marked delivered when the SMTP server
    accepts it)."""

    phone: str | None = None
    document: Annotated[str | None, WithJsonSchema({"type": "string"})] = None
    delivery: Annotated[
        str, WithJsonSchema({"enum": list(DELIVERY_CHANNELS), "default": "email"})
    ] = "email"
    email: Annotated[str | None, WithJsonSchema({"type": "string", "format": "email"})] = None
    protocol: str | None = Field(
        default=None,
        description="The protocol of the contact in which the customer asked "
        "(the request goes on its timeline).",
    )

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any, info: ValidationInfo) -> Any:
        """The checks of :func:`parse_request_body`, in its order."""
        context = info.context or {}
        fmt = context.get("protocol_format") or core_of(context["request"]).protocol_format
        fields = parse_request_body(data, fmt)
        return {
            "phone": fields["phone"],
            "document": fields["document_number"],
            "delivery": fields["delivery"],
            "email": fields["email"],
            "protocol": fields["protocol_number"],
        }


class DeliveredBody(BodyModel):
    REQUIRED = ("via",)

    via: Annotated[str, WithJsonSchema({"enum": list(DELIVERY_CHANNELS)})]

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any) -> Any:
        return {"via": parse_delivered_body(data)}


DELIVERED_FIELDS = ("via",)


def parse_delivered_body(body: dict[str, Any]) -> str:
    """``{"via": "email" | "mail" | "in_person" | "other"}``."""
    reject_unknown(body, DELIVERED_FIELDS)
    via = body.get("via")
    if not isinstance(via, str) or via not in DELIVERY_CHANNELS:
        raise bad_request(f"via must be one of {', '.join(DELIVERY_CHANNELS)}", field="via")
    return via
