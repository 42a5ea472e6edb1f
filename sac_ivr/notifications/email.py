"""E-mail over SMTP (aiosmtplib).

Each message carries ``Message-ID: <outbox key@domain>``, the same on every attempt:
if a crash makes the worker send a message the server had already accepted, the
copies are recognisably one message (mail clients and many servers collapse them).
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib

from sac_ivr.config import Settings
from sac_ivr.notifications.delivery import SendError, SendResult
from sac_ivr.notifications.tables import OutboxMessage

log = logging.getLogger(__name__)


def message_id(key: str, from_address: str) -> str:
    domain = parseaddr(from_address)[1].rpartition("@")[2] or "sac-ivr.invalid"
    return f"<{key}@{domain}>"


class SmtpSender:
    channel = "email"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def build(self, message: OutboxMessage, protocol_number: str | None = None) -> EmailMessage:
        s = self._settings
        email = EmailMessage()
        email["From"] = s.smtp_from
        email["To"] = message.recipient
        email["Subject"] = message.subject or ""
        email["Date"] = format_datetime(message.created_at)
        email["Message-ID"] = message_id(message.key, s.smtp_from)
        email["Auto-Submitted"] = "auto-generated"
        if protocol_number:
            email["X-SAC-Protocol"] = protocol_number
        email.set_content(message.body, charset="utf-8")
        if message.body_html:
            email.add_alternative(message.body_html, subtype="html", charset="utf-8")
        return email

    async def send(self, message: OutboxMessage) -> SendResult:
        s = self._settings
        number = (message.data or {}).get("protocol")
        email = self.build(message, number)
        try:
            await aiosmtplib.send(
                email,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=s.smtp_password or None,
                use_tls=s.smtp_tls,
                start_tls=True if s.smtp_starttls else False,
                timeout=s.smtp_timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise SendError(
                f"recipient refused: {exc}", permanent=all(c >= 500 for c in codes)
            ) from None
        except aiosmtplib.SMTPDataError as exc:
            raise SendError(f"message refused: {exc.code} {exc.message}", exc.code >= 500) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from None
        return SendResult(provider_id=email["Message-ID"])

    async def close(self) -> None:
        return None
