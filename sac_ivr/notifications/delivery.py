"""What a sender (e-mail, SMS provider) promises the outbox worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sac_ivr.notifications.tables import OutboxMessage


@dataclass(frozen=True)
class SendResult:
    provider_id: str | None = None  # the provider's id for the message, if it gave one


class SendError(Exception):
    """The message was not accepted. ``permanent``: retrying cannot help (bad
    address, content refused); otherwise the worker retries with backoff."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sender(Protocol):
    channel: str

    async def send(self, message: OutboxMessage) -> SendResult: ...

    async def close(self) -> None: ...
