"""How protocols look over HTTP, and how their query parameters are read."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

from aiohttp import web

from sac_ivr.db.base import utcnow
from sac_ivr.http.errors import bad_request
from sac_ivr.http.inputs import document_param, parse_bool, parse_int, phone_param, query_text
from sac_ivr.http.listing import iso
from sac_ivr.lifecycle.statuses import status_label
from sac_ivr.phones import mask_phone
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


LIST_COLUMNS = (
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
)


def parse_filter(request: web.Request) -> ProtocolFilter:
    query = request.query
    phone_e164 = phone_param(query.get("phone"))
    doc = document_param(query.get("document"))
    status = query_text(query.get("status"), "status", STATUS_MAX)
    if status and not _STATUS_NAME.fullmatch(status):
        raise bad_request("status is not a status name", field="status")
    return ProtocolFilter(
        phone_e164=phone_e164, document=doc, status=status or None, **parse_due_filter(query)
    )


def parse_due_filter(query: Mapping[str, str]) -> dict[str, Any]:
    """``overdue=true``: pending and past due; ``due_within_days=N``: pending and due
    from now to N days ahead. Both look only at requests not yet answered."""
    is_overdue = parse_bool(query.get("overdue"), "overdue")
    within = parse_int(query.get("due_within_days"), "due_within_days", -1, 0, DUE_WITHIN_DAYS_MAX)
    if is_overdue and within >= 0:
        raise bad_request("use overdue=true or due_within_days, not both", field="due_within_days")
    now = utcnow()
    if is_overdue:
        return {"pending_only": True, "due_before": now}
    if within >= 0:
        return {"pending_only": True, "due_after": now, "due_before": now + timedelta(days=within)}
    return {}
