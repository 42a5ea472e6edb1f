"""The lifecycle settings turned into ready objects, and their check (the lifecycle
feature's ``check_settings``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from sac_ivr.config import ConfigError, Settings
from sac_ivr.lifecycle import statuses
from sac_ivr.lifecycle.deadlines import (
    Deadline,
    HolidayCalendar,
    LegalProfile,
    build_profile,
    due_at,
)
from sac_ivr.lifecycle.statuses import BUILTIN_SUBJECT_LABELS, Choice


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


def check_settings(settings: Settings) -> None:
    """Refuse lifecycle settings that could not work (raises ConfigError with the
    setting's name)."""
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
