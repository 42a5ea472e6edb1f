"""History requests over HTTP: views and body/query parsing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sac_ivr.db.base import utcnow
from sac_ivr.history.models import HistoryRequest
from sac_ivr.history.services import DELIVERY_CHANNELS
from sac_ivr.http.errors import bad_request
from sac_ivr.http.inputs import document_param, phone_param
from sac_ivr.http.listing import iso
from sac_ivr.notifications.email import valid_address
from sac_ivr.protocols.numbering import InvalidProtocolNumber, ProtocolFormat


def request_view(r: HistoryRequest) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": r.id,
        "requested_at": iso(r.requested_at),
        "requested_by": r.requested_by,
        "phone": r.phone_e164,
        "document": r.document,
        "delivery": r.delivery,
        "email": r.email,
        "due_at": iso(r.due_at),
        "overdue": r.delivered_at is None and r.due_at < now,
        "delivered_at": iso(r.delivered_at),
        "delivered_via": r.delivered_via,
        "delivered_by": r.delivered_by,
    }


LIST_COLUMNS = (
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
)


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
    unknown = sorted(set(body) - set(REQUEST_FIELDS))
    if unknown:
        raise bad_request(
            f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(REQUEST_FIELDS)}",
            field=unknown[0],
        )
    customer = parse_customer(body, from_body=True)
    delivery = body.get("delivery", "email")
    if delivery not in DELIVERY_CHANNELS:
        raise bad_request(
            f"delivery must be one of {', '.join(DELIVERY_CHANNELS)}", field="delivery"
        )
    email = body.get("email")
    if email is not None:
        if not isinstance(email, str) or not valid_address(email.strip()):
            raise bad_request("email is not an e-mail address", field="email")
        email = email.strip()
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


def parse_format(request: web.Request) -> str:
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "html"):
        raise bad_request("format must be json or html", field="format")
    return fmt


def parse_request_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 12:
        raise bad_request("id must be a whole number", field="id")
    return int(raw)
