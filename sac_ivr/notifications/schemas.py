"""How outbox rows look over HTTP, and the listing's filters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sac_ivr.http.inputs import parse_choice
from sac_ivr.http.listing import iso
from sac_ivr.notifications.services import mask_recipient
from sac_ivr.notifications.tables import OutboxMessage

STATUSES = ("pending", "sending", "sent", "failed")
CHANNELS = ("sms", "email")


def outbox_view(m: OutboxMessage, number: str | None = None) -> dict[str, Any]:
    return {
        "id": m.id,
        "protocol": number if number is not None else (m.data or {}).get("protocol"),
        "kind": m.kind,
        "channel": m.channel,
        "to": mask_recipient(m.channel, m.recipient),
        "status": m.status,
        "attempts": m.attempts,
        "next_attempt_at": iso(m.next_attempt_at) if m.status == "pending" else None,
        "last_error": m.last_error,
        "message_key": m.key,
        "provider_id": m.provider_id,
        "created_at": iso(m.created_at),
        "sent_at": iso(m.sent_at),
    }


LIST_COLUMNS = (
    "id",
    "protocol",
    "kind",
    "channel",
    "to",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "sent_at",
)


@dataclass(frozen=True)
class OutboxFilter:
    status: str | None = None
    channel: str | None = None


def parse_filter(request: web.Request) -> OutboxFilter:
    query = request.query
    return OutboxFilter(
        status=parse_choice(query.get("status"), "status", STATUSES),
        channel=parse_choice(query.get("channel"), "channel", CHANNELS),
    )
