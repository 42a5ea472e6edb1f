"""The notifications feature's settings check (SMS provider, SMTP, outbox)."""

from __future__ import annotations

from sac_ivr.config import ConfigError, Settings

SMS_PROVIDERS = ("", "webhook", "zenvia")


def check_settings(settings: Settings) -> None:
    """Refuse notification settings that could not work (raises ConfigError with the
    setting's name)."""
    if settings.sms_provider not in SMS_PROVIDERS:
        raise ConfigError(
            f"sms_provider: {settings.sms_provider!r} is not one of webhook, zenvia (or empty)"
        )
    if settings.sms_provider == "webhook" and not settings.sms_url:
        raise ConfigError("sms_url: the webhook SMS provider needs the URL to POST to")
    if settings.sms_url and not settings.sms_url.startswith(("http://", "https://")):
        raise ConfigError("sms_url: must be an http:// or https:// URL")
    if settings.smtp_host and not settings.smtp_from:
        raise ConfigError("smtp_from: e-mail needs a From address")
    if settings.smtp_tls and settings.smtp_starttls:
        raise ConfigError("smtp_tls and smtp_starttls: choose one (465: tls, 587: starttls)")
    if not 0 < settings.smtp_port <= 65535:
        raise ConfigError(f"smtp_port: {settings.smtp_port} is not a TCP port")
    positive = (
        "smtp_timeout",
        "sms_timeout",
        "outbox_poll_interval",
        "outbox_lease_seconds",
        "outbox_backoff_seconds",
        "outbox_backoff_max_seconds",
    )
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name}: must be more than 0")
    for name in ("outbox_batch_size", "outbox_concurrency", "outbox_max_attempts"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{name}: must be at least 1")
    longest_send = max(settings.smtp_timeout, settings.sms_timeout)
    if settings.outbox_lease_seconds <= longest_send:
        raise ConfigError(
            "outbox_lease_seconds: must be longer than smtp_timeout and sms_timeout, or "
            "another worker could resend a message still being sent"
        )
