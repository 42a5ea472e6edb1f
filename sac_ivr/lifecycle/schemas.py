"""Bodies of the lifecycle write API: read, validated, normalised. Every error is a
400 naming the field."""

from __future__ import annotations

from typing import Any

from sac_ivr.http.errors import bad_request
from sac_ivr.http.inputs import check_text, document_param, email_param, phone_param
from sac_ivr.http.inputs import read_object as read_object  # moved; kept importable
from sac_ivr.http.inputs import reject_unknown as _reject_unknown
from sac_ivr.lifecycle import statuses
from sac_ivr.lifecycle.config import LifecycleConfig

MAX_BODY_TEXT = {"customer_name": 128, "notes": 10000, "agent": 64}
NOTE_MAX = 4000
# Free text where line breaks and tabs belong; every other field is one line.
MULTILINE = ("notes", "customer_note", "internal_note")


def _text(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body[name]
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string or null", field=name)
    return check_text(value, name, limit, lines=name in MULTILINE) or None


def _code(body: dict[str, Any], name: str, known: set[str]) -> str | None:
    value = _text(body, name, 64)
    if value is not None and value not in known:
        raise bad_request(
            f"{name} {value!r} is not configured; known: {', '.join(sorted(known))}", field=name
        )
    return value


def parse_changes(body: dict[str, Any], config: LifecycleConfig) -> dict[str, Any]:
    """PATCH body → normalised field values (null clears a field)."""
    from sac_ivr.lifecycle.services import EDITABLE_FIELDS

    _reject_unknown(body, EDITABLE_FIELDS)
    if not body:
        raise bad_request(f"nothing to change; fields: {', '.join(EDITABLE_FIELDS)}", field="body")
    out: dict[str, Any] = {}
    for name in body:
        if name == "subject":
            out[name] = _code(body, name, config.subject_codes())
        elif name == "department":
            out[name] = _code(body, name, config.department_codes())
        elif name == "customer_document":
            out[name] = document_param(_text(body, name, 40), field=name)
        elif name == "customer_email":
            raw = _text(body, name, 254)
            out[name] = email_param(raw, field=name) if raw is not None else None
        elif name == "customer_phone":
            out[name] = phone_param(_text(body, name, 40), field=name)
        else:
            out[name] = _text(body, name, MAX_BODY_TEXT[name])
    return out


TRANSITION_FIELDS = ("to_status", "department", "customer_note", "internal_note")


def parse_transition(body: dict[str, Any], config: LifecycleConfig) -> dict[str, Any]:
    _reject_unknown(body, TRANSITION_FIELDS)
    if "to_status" not in body:
        raise bad_request("to_status is required", field="to_status")
    to_status = body["to_status"]
    if not isinstance(to_status, str) or to_status not in statuses.BY_CODE:
        raise bad_request(
            f"to_status must be one of {', '.join(statuses.BY_CODE)}", field="to_status"
        )
    out: dict[str, Any] = {"to_status": to_status}
    if "department" in body:
        out["department"] = _code(body, "department", config.department_codes())
    for name in ("customer_note", "internal_note"):
        if name in body:
            out[name] = _text(body, name, NOTE_MAX)
    if to_status == "forwarded" and not out.get("department"):
        raise bad_request("forwarding needs the department it goes to", field="department")
    return out
