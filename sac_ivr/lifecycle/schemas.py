"""Bodies of the lifecycle write API: read, validated, normalised. Every error is a
400 naming the field."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sac_ivr.http.errors import bad_request
from sac_ivr.http.inputs import document_param, phone_param
from sac_ivr.lifecycle import statuses
from sac_ivr.lifecycle.config import LifecycleConfig
from sac_ivr.notifications.email import valid_address

MAX_BODY_TEXT = {"customer_name": 128, "notes": 10000, "agent": 64}
NOTE_MAX = 4000


async def read_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or 400."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("the body must be a JSON object", field="body") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object", field="body")
    return body


def _reject_unknown(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise bad_request(
            f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(allowed)}",
            field=unknown[0],
        )


def _text(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body[name]
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string or null", field=name)
    value = value.strip()
    if len(value) > limit:
        raise bad_request(f"{name} must be at most {limit} characters", field=name)
    if any(ord(c) < 32 and c not in "\n\r\t" for c in value):
        raise bad_request(f"{name} contains control characters", field=name)
    return value or None


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
            if raw is not None:
                local, _, domain = raw.rpartition("@")
                raw = f"{local}@{domain.lower()}" if local else raw
                if not valid_address(raw):
                    raise bad_request(f"{raw!r} is not an e-mail address", field=name)
            out[name] = raw
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
