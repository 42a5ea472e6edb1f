"""History requests over HTTP: views and body/query parsing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sac_ivr.db.base import utcnow
from sac_ivr.history.services import DELIVERY_CHANNELS
from sac_ivr.history.tables import HistoryRequest
from sac_ivr.http.errors import bad_request
from sac_ivr.http.inputs import (
    document_param,
    email_param,
    parse_bool,
    parse_choice,
    path_int,
    phone_param,
    reject_unknown,
)
from sac_ivr.http.listing import iso
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


def parse_format(request: web.Request) -> str:
    return parse_choice(request.query.get("format"), "format", ("json", "html"), "json") or "json"


def parse_request_id(request: web.Request) -> int:
    return path_int(request, "id")


def parse_list_flags(request: web.Request) -> dict[str, bool]:
    """``pending`` and ``overdue`` (true/false) of the listing."""
    return {name: parse_bool(request.query.get(name), name) for name in ("pending", "overdue")}


DELIVERED_FIELDS = ("via",)


def parse_delivered_body(body: dict[str, Any]) -> str:
    """``{"via": "email" | "mail" | "in_person" | "other"}``."""
    reject_unknown(body, DELIVERED_FIELDS)
    via = body.get("via")
    if not isinstance(via, str) or via not in DELIVERY_CHANNELS:
        raise bad_request(f"via must be one of {', '.join(DELIVERY_CHANNELS)}", field="via")
    return via
