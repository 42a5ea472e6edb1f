"""SMS through an HTTP provider.

Providers (setting ``sms_provider``):

``webhook``
    A generic JSON POST to ``sms_url``::

        POST <sms_url>
        Authorization: Bearer <sms_secret>        (when set)
        Idempotency-Key: <outbox key>
        {"id": "<outbox key>", "to": "+5511987654321", "from": "<sms_sender>",
         "text": "...", "reference": "<protocol number>"}

    Any 2xx accepts the message; ``{"id": ...}`` in the answer is stored as the
    provider's id. A gateway that honours ``Idempotency-Key`` (answers a repeated key
    with the first result, sending nothing) makes delivery exactly-once across
    crashes.

``zenvia``
    Zenvia API v2 (Brazil), ``POST https://api.zenvia.com/v2/channels/sms/messages``
    with header ``X-API-TOKEN`` and body ``{"from": <sender alias>, "to": "5511987654321",
    "contents": [{"type": "text", "text": "..."}]}``; the answer's ``id`` is stored.
    This API takes no idempotency key: a crash after Zenvia accepted a message and
    before our commit can send it twice (at-least-once; see docs in worker.py).

Errors: 4xx other than 408/425/429 are permanent (the request itself is wrong);
401/403 are retried (a token being fixed should not lose messages); 5xx, timeouts
and connection errors are retried with backoff.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from sac_ivr.config import Settings
from sac_ivr.notifications.delivery import SendError, SendResult
from sac_ivr.notifications.tables import OutboxMessage

log = logging.getLogger(__name__)

ZENVIA_URL = "https://api.zenvia.com/v2/channels/sms/messages"
RETRYABLE_4XX = {401, 403, 408, 425, 429}


class HttpSmsSender:
    channel = "sms"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    def request(self, message: OutboxMessage) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(url, headers, JSON body) for this provider."""
        s = self._settings
        if s.sms_provider == "zenvia":
            headers = {"X-API-TOKEN": s.sms_secret}
            body: dict[str, Any] = {
                "from": s.sms_sender,
                "to": message.recipient.lstrip("+"),
                "contents": [{"type": "text", "text": message.body}],
            }
            return s.sms_url or ZENVIA_URL, headers, body
        headers = {"Idempotency-Key": message.key}
        if s.sms_secret:
            headers["Authorization"] = f"Bearer {s.sms_secret}"
        body = {
            "id": message.key,
            "to": message.recipient,
            "from": s.sms_sender or None,
            "text": message.body,
            "reference": (message.data or {}).get("protocol"),
        }
        return s.sms_url, headers, body

    async def send(self, message: OutboxMessage) -> SendResult:
        url, headers, body = self.request(message)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._settings.sms_timeout)
            )
        try:
            async with self._session.post(url, json=body, headers=headers) as response:
                text = await response.text()
                if response.status >= 400:
                    permanent = response.status < 500 and response.status not in RETRYABLE_4XX
                    raise SendError(f"HTTP {response.status}: {text[:300]}", permanent)
                provider_id = None
                try:
                    answer = await response.json(content_type=None)
                    if isinstance(answer, dict) and answer.get("id") is not None:
                        provider_id = str(answer["id"])[:128]
                except ValueError:
                    pass
                return SendResult(provider_id=provider_id)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
