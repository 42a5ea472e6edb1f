"""Legal deadlines: calendar and business days over Brazilian holidays, profiles."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from sac_ivr.config import ConfigError
from sac_ivr.features import load_settings
from sac_ivr.lifecycle.config import LifecycleConfig
from sac_ivr.lifecycle.deadlines import (
    Deadline,
    HolidayCalendar,
    add_business_days,
    build_profile,
    due_at,
    easter,
)

SP = ZoneInfo("America/Sao_Paulo")


def local(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SP)


def due_local(opened: datetime, spec: str, calendar: HolidayCalendar) -> datetime:
    return due_at(opened, Deadline.parse(spec), SP, calendar).astimezone(SP)


NATIONAL = HolidayCalendar(None, optional=(), extra=())
WITH_CARNIVAL = HolidayCalendar(None, optional=("carnival",))


@pytest.mark.parametrize(
    ("opened", "calendar", "expected"),
    [
        # Friday before Carnaval: Mon 3 and Tue 4 March 2025 are days off.
        (local(2025, 2, 28), WITH_CARNIVAL, date(2025, 3, 11)),
        (local(2025, 2, 28), NATIONAL, date(2025, 3, 7)),
        # Good Friday 18 April, weekend, Tiradentes Monday 21 April 2025.
        (local(2025, 4, 17), NATIONAL, date(2025, 4, 28)),
        # Christmas Thursday 25 December 2025.
        (local(2025, 12, 22), NATIONAL, date(2025, 12, 30)),
        # ... and with the eves off too, across New Year's Day.
        (
            local(2025, 12, 22),
            HolidayCalendar(None, optional=("christmas_eve", "new_years_eve")),
            date(2026, 1, 2),
        ),
        # São Paulo state holiday, 9 July (Revolução Constitucionalista), a Wednesday.
        (local(2025, 7, 8), HolidayCalendar("SP", optional=()), date(2025, 7, 16)),
        (local(2025, 7, 8), NATIONAL, date(2025, 7, 15)),
        # A municipal holiday from the configuration, every year (25 January, São Paulo city).
        (local(2027, 1, 22), HolidayCalendar(None, optional=(), extra=["01-25"]), date(2027, 2, 1)),
        (local(2027, 1, 22), NATIONAL, date(2027, 1, 29)),
    ],
)
def test_five_business_days_skip_weekends_and_holidays(
    opened: datetime, calendar: HolidayCalendar, expected: date
) -> None:
    due = due_local(opened, "5bd", calendar)
    assert due.date() == expected
    assert (due.hour, due.minute, due.second) == (23, 59, 59)
    # Independent check: exactly five business days in (opened, due].
    day, counted = opened.date(), 0
    while day < expected:
        day += timedelta(days=1)
        counted += calendar.is_business_day(day)
    assert counted == 5 and calendar.is_business_day(expected)


def test_registration_day_is_not_counted_even_late_at_night() -> None:
    # 23:30 in São Paulo is already the next day in UTC: the local date counts.
    opened = local(2025, 12, 20, 23, 30)
    assert opened.astimezone(ZoneInfo("UTC")).date() == date(2025, 12, 21)
    assert due_local(opened, "7d", NATIONAL) == datetime(2025, 12, 27, 23, 59, 59, tzinfo=SP)


def test_calendar_days_are_not_extended_over_holidays() -> None:
    # 7 calendar days from 18 Dec 2025 end on Christmas: the stricter reading keeps it.
    assert due_local(local(2025, 12, 18), "7d", NATIONAL).date() == date(2025, 12, 25)


def test_hours_are_exact() -> None:
    opened = local(2025, 4, 17, 14, 5)
    assert due_local(opened, "72h", NATIONAL) == local(2025, 4, 20, 14, 5)


def test_business_days_from_a_holiday_start_the_next_business_day() -> None:
    assert add_business_days(date(2025, 12, 25), 1, NATIONAL) == date(2025, 12, 26)
    assert add_business_days(date(2025, 12, 26), 1, NATIONAL) == date(2025, 12, 29)


def test_easter_matches_the_holidays_package() -> None:
    for year in range(2000, 2060):
        good_friday = easter(year) - timedelta(days=2)
        assert good_friday in holidays.Brazil(years=year), year


def test_profiles() -> None:
    p11034 = build_profile("decreto-11034")
    assert (str(p11034.reply), str(p11034.history)) == ("7d", "5d")
    p6523 = build_profile("decreto-6523")
    assert (str(p6523.reply), str(p6523.history)) == ("5bd", "72h")
    ans = build_profile("ans", extended_subjects=["high_complexity"])
    assert str(ans.reply_deadline("complaint")) == "5bd"
    assert str(ans.reply_deadline("high_complexity")) == "10bd"
    custom = build_profile(
        "custom",
        custom_reply="3bd",
        custom_extended_reply="20d",
        custom_history="48h",
        extended_subjects=["billing"],
    )
    assert str(custom.reply_deadline(None)) == "3bd"
    assert str(custom.reply_deadline("billing")) == "20d"
    assert custom.history == Deadline(48, "hours")
    assert Deadline(5, "business_days").describe_pt() == "5 dias úteis"


def test_ans_extended_subject_is_offered_and_gets_ten_business_days() -> None:
    settings = load_settings(env={}, overrides={"legal_profile": "ans"})
    config = LifecycleConfig.from_settings(settings)
    assert "high_complexity" in config.subject_codes()
    opened = local(2025, 2, 28)  # Friday before Carnaval (a day off by default)
    assert config.reply_due(opened, "complaint").astimezone(SP).date() == date(2025, 3, 11)
    assert config.reply_due(opened, "high_complexity").astimezone(SP).date() == date(2025, 3, 18)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"legal_profile": "cdc"}, "legal_profile"),
        ({"legal_profile": "custom", "custom_reply_deadline": "7 dias"}, "custom_reply_deadline"),
        ({"legal_profile": "custom", "custom_history_deadline": "0d"}, "custom_history_deadline"),
        ({"holidays_state": "XX"}, "holidays_state"),
        ({"holidays_extra": "2025-02-30"}, "holidays_extra"),
        ({"holidays_optional": "carnaval"}, "holidays_optional"),
        ({"subjects": "Complaint:Reclamação"}, "subjects"),
        ({"sms_provider": "twilio"}, "sms_provider"),
        ({"sms_provider": "webhook"}, "sms_url"),
        ({"smtp_host": "mail.example.com"}, "smtp_from"),
        ({"outbox_lease_seconds": "10"}, "outbox_lease_seconds"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(overrides: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(env={}, overrides=overrides)


def test_settings_from_environment_lists() -> None:
    settings = load_settings(
        env={
            "SAC_IVR_HOLIDAYS_EXTRA": "01-25, 2026-11-20",
            "SAC_IVR_SUBJECTS": "information:Informação,complaint:Reclamação",
            "SAC_IVR_HOLIDAYS_STATE": "RJ",
        }
    )
    config = LifecycleConfig.from_settings(settings)
    assert [s.code for s in config.subjects] == ["information", "complaint"]
    assert config.calendar.holiday_name(date(2026, 1, 25)) == "Feriado local"
    assert config.calendar.holiday_name(date(2026, 4, 23)) is not None  # São Jorge (RJ)
