"""How outbox rows look over HTTP, and the listing's filters."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sac_ivr.http.endpoints import CsvExport, ListQuery, PageOf, RequestModel, ResponseModel
from sac_ivr.http.fields import PathId, QueryChoice, Timestamp
from sac_ivr.notifications.services import mask_recipient
from sac_ivr.notifications.tables import OutboxMessage

STATUSES = ("pending", "sending", "sent", "failed")
CHANNELS = ("sms", "email")


class Notification(ResponseModel):
    id: int
    protocol: str | None
    kind: str = Field(description="opened, status, cancellation, sms_request, history")
    channel: Literal["sms", "email"]
    to: str | None = Field(description="Masked recipient")
    status: Literal["pending", "sending", "sent", "failed"]
    attempts: int
    next_attempt_at: Timestamp | None
    last_error: str | None
    message_key: str = Field(
        description="Stable across attempts: e-mail Message-ID, SMS idempotency key"
    )
    provider_id: str | None
    created_at: Timestamp
    sent_at: Timestamp | None


class NotificationPage(PageOf[Notification]):
    pass


def outbox_view(m: OutboxMessage, number: str | None = None) -> Notification:
    return Notification(
        id=m.id,
        protocol=number if number is not None else (m.data or {}).get("protocol"),
        kind=m.kind,
        channel=m.channel,  # type: ignore[arg-type]  # the column holds CHANNELS only
        to=mask_recipient(m.channel, m.recipient),
        status=m.status,  # type: ignore[arg-type]  # the column holds STATUSES only
        attempts=m.attempts,
        next_attempt_at=m.next_attempt_at if m.status == "pending" else None,
        last_error=m.last_error,
        message_key=m.key,
        provider_id=m.provider_id,
        created_at=m.created_at,
        sent_at=m.sent_at,
    )


NOTIFICATIONS_CSV = CsvExport(
    columns=(
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
    ),
    filename="notifications.csv",
)
LIST_COLUMNS = NOTIFICATIONS_CSV.columns


class NotificationQuery(ListQuery):
    """``GET /api/v1/notifications``: the page, then the filters."""

    status: Annotated[str | None, QueryChoice(STATUSES)] = None
    channel: Annotated[str | None, QueryChoice(CHANNELS)] = None


class NotificationPath(RequestModel):
    id: PathId
