"""The access log and the lookup counts over HTTP: views and query parameters."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from sac_ivr.audit.services import ACTIONS, OUTCOMES
from sac_ivr.audit.tables import AccessLogEntry
from sac_ivr.http.errors import bad_request
from sac_ivr.http.inputs import document_param, phone_param
from sac_ivr.http.listing import iso, parse_datetime
from sac_ivr.protocols.numbering import InvalidProtocolNumber, ProtocolFormat

ACTOR_MAX = 64


def entry_view(entry: AccessLogEntry, protocols: list[str]) -> dict[str, Any]:
    searched = [k for k, h in (("phone", entry.phone_hash), ("document", entry.document_hash)) if h]
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "endpoint": entry.endpoint,
        "client": entry.client,
        "searched_by": searched,
        "rows": entry.rows,
        "protocols": protocols,
    }


LIST_COLUMNS = (
    "id",
    "at",
    "actor",
    "role",
    "action",
    "endpoint",
    "client",
    "searched_by",
    "rows",
    "protocols",
)

COUNT_COLUMNS = ("day", *OUTCOMES)


def parse_access_filter(request: web.Request, fmt: ProtocolFormat) -> dict[str, Any]:
    """Query parameters of ``GET /api/v1/access-log`` (the phone and document are
    normalised here and hashed by the handler)."""
    query = request.query
    actor = query.get("actor", "").strip()
    if len(actor) > ACTOR_MAX:
        raise bad_request(f"actor must be at most {ACTOR_MAX} characters", field="actor")
    action = query.get("action", "").strip()
    if action and action not in ACTIONS:
        raise bad_request(f"action must be one of {', '.join(ACTIONS)}", field="action")
    protocol = query.get("protocol", "").strip()
    if protocol:
        try:
            protocol = fmt.validate(protocol)
        except InvalidProtocolNumber as exc:
            raise bad_request(str(exc), field="protocol") from None
    since = parse_datetime(query.get("from"), "from")
    until = parse_datetime(query.get("until"), "until")
    return {
        "actor": actor or None,
        "action": action or None,
        "protocol": protocol or None,
        "phone": phone_param(query.get("phone")),
        "document": document_param(query.get("document")),
        "since": since,
        "until": until,
    }


def parse_day(raw: str | None, name: str) -> date | None:
    if raw is None or raw == "":
        return None
    text = raw.strip()
    try:
        if len(text) != 10 or not text.isascii():
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{name} must be a date, YYYY-MM-DD", field=name) from None
