"""The lifecycle, notification and retention settings turned into ready objects, and
their validation (called from ``Settings.validate``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from sac_ivr.lifecycle import statuses
from sac_ivr.lifecycle.deadlines import (
    Deadline,
    HolidayCalendar,
    LegalProfile,
    build_profile,
    due_at,
)
from sac_ivr.lifecycle.statuses import BUILTIN_SUBJECT_LABELS, Choice

if TYPE_CHECKING:
    from sac_ivr.config import Settings

SMS_PROVIDERS = ("", "webhook", "zenvia")


@dataclass(frozen=True)
class LifecycleConfig:
    profile: LegalProfile
    calendar: HolidayCalendar
    subjects: tuple[Choice, ...]
    departments: tuple[Choice, ...]
    tz: tzinfo

    @classmethod
    def from_settings(cls, settings: Settings) -> LifecycleConfig:
        profile = build_profile(
            settings.legal_profile,
            extended_subjects=settings.extended_subjects,
            custom_reply=settings.custom_reply_deadline,
            custom_extended_reply=settings.custom_extended_reply_deadline,
            custom_history=settings.custom_history_deadline,
        )
        subjects = statuses.parse_choices(settings.subjects, "subjects")
        if profile.extended_reply is not None:
            # The profile's longer-deadline natures are offered even if not listed.
            known = {s.code for s in subjects}
            subjects += tuple(
                Choice(code, BUILTIN_SUBJECT_LABELS.get(code, code))
                for code in settings.extended_subjects
                if code not in known
            )
        return cls(
            profile=profile,
            calendar=HolidayCalendar(
                settings.holidays_state or None,
                settings.holidays_optional,
                settings.holidays_extra,
            ),
            subjects=subjects,
            departments=statuses.parse_choices(settings.departments, "departments"),
            tz=settings.tz,
        )

    def subject_codes(self) -> set[str]:
        return {s.code for s in self.subjects}

    def department_codes(self) -> set[str]:
        return {d.code for d in self.departments}

    def subject_label(self, code: str | None) -> str:
        return statuses.choice_label(self.subjects, code)

    def department_label(self, code: str | None) -> str:
        return statuses.choice_label(self.departments, code)

    def reply_due(self, opened_at: datetime, subject: str | None) -> datetime:
        return due_at(opened_at, self.profile.reply_deadline(subject), self.tz, self.calendar)

    def history_due(self, requested_at: datetime) -> datetime:
        return due_at(requested_at, self.profile.history, self.tz, self.calendar)

    def as_dict(self) -> dict[str, Any]:
        """The ``GET /api/v1/lifecycle`` body: what the agent panel builds forms from."""
        return {
            "statuses": [
                {"code": s.code, "label_pt": s.label_pt, "final": s.final}
                for s in statuses.STATUSES
            ],
            "transitions": {k: list(v) for k, v in statuses.TRANSITIONS.items()},
            "subjects": [{"code": s.code, "label_pt": s.label_pt} for s in self.subjects],
            "departments": [{"code": d.code, "label_pt": d.label_pt} for d in self.departments],
            "profile": {
                **self.profile.as_dict(),
                "answered_statuses": list(statuses.ANSWERED_STATUSES),
                "holidays_state": self.calendar.state,
                "holidays_optional": list(self.calendar.optional),
            },
        }


def validate_feature_settings(settings: Settings) -> None:
    """Refuse settings of the lifecycle, notification and retention features that
    could not work (raises ConfigError with the setting's name)."""
    from sac_ivr.config import ConfigError  # local: config imports this module lazily

    if settings.legal_profile == "custom":
        for name in (
            "custom_reply_deadline",
            "custom_extended_reply_deadline",
            "custom_history_deadline",
        ):
            value = getattr(settings, name)
            if value or name != "custom_extended_reply_deadline":
                try:
                    Deadline.parse(value)
                except ValueError as exc:
                    raise ConfigError(f"{name}: {exc}") from exc
    try:
        LifecycleConfig.from_settings(settings)
    except ValueError as exc:
        name = _setting_for(str(exc))
        raise ConfigError(f"{name}{exc}") from exc
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
    if settings.retention_recording_days < 1 or settings.retention_record_days < 1:
        raise ConfigError("retention_recording_days / retention_record_days: at least 1 day")


def _setting_for(message: str) -> str:
    """Prefix a validation message with the setting it concerns, if it doesn't say."""
    for prefix in ("subjects:", "departments:"):
        if message.startswith(prefix):
            return ""
    if "legal profile" in message:
        return "legal_profile: "
    if "state code" in message:
        return "holidays_state: "
    if "optional day" in message:
        return "holidays_optional: "
    if "is not a date" in message:
        return "holidays_extra: "
    return ""
