"""Legal deadlines: pure functions over dates, Brazilian holidays and legal profiles.

Counting rules (the stricter reading, so the supplier is never late by our clock):

- the registration day is not counted; day 1 is the day after;
- ``Nd`` calendar days: due at the end (23:59:59 local) of day N, whether or not it
  is a business day (no extension to the next business day);
- ``Nbd`` business days: days that are neither Saturday, Sunday, a national holiday
  (the ``holidays`` package), an optional day off the operator keeps (Carnaval by
  default), a holiday of the configured state, nor a configured local holiday; due at
  the end of the Nth such day;
- ``Nh`` hours: exactly N hours after the registration instant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Any

import holidays

UNITS = {"d": "calendar_days", "bd": "business_days", "h": "hours"}
_SPEC = re.compile(r"^\s*(\d{1,4})\s*(bd|d|h)\s*$")


@dataclass(frozen=True)
class Deadline:
    amount: int
    unit: str  # calendar_days | business_days | hours

    @classmethod
    def parse(cls, text: str) -> Deadline:
        """``7d``, ``5bd`` or ``72h``."""
        match = _SPEC.match(text or "")
        if not match or int(match[1]) < 1:
            raise ValueError(
                f"{text!r} is not a deadline: use e.g. 7d (calendar days), 5bd (business "
                "days) or 72h (hours)"
            )
        return cls(int(match[1]), UNITS[match[2]])

    def __str__(self) -> str:
        suffix = {v: k for k, v in UNITS.items()}[self.unit]
        return f"{self.amount}{suffix}"

    def describe_pt(self) -> str:
        if self.unit == "hours":
            return f"{self.amount} horas"
        kind = "dias úteis" if self.unit == "business_days" else "dias corridos"
        if self.amount == 1:
            kind = "dia útil" if self.unit == "business_days" else "dia corrido"
        return f"{self.amount} {kind}"


@dataclass(frozen=True)
class LegalProfile:
    code: str
    title: str
    reply: Deadline
    history: Deadline
    extended_reply: Deadline | None = None
    extended_subjects: frozenset[str] = field(default_factory=frozenset)
    basis: str = ""

    def reply_deadline(self, subject: str | None) -> Deadline:
        if self.extended_reply is not None and subject in self.extended_subjects:
            return self.extended_reply
        return self.reply

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title": self.title,
            "reply": str(self.reply),
            "reply_pt": self.reply.describe_pt(),
            "extended_reply": str(self.extended_reply) if self.extended_reply else None,
            "extended_subjects": sorted(self.extended_subjects) if self.extended_reply else [],
            "history": str(self.history),
            "history_pt": self.history.describe_pt(),
            "basis": self.basis,
        }


PROFILE_CODES = ("decreto-11034", "decreto-6523", "ans", "custom")


def build_profile(
    code: str,
    *,
    extended_subjects: Iterable[str] = (),
    custom_reply: str = "7d",
    custom_extended_reply: str = "",
    custom_history: str = "5d",
) -> LegalProfile:
    """The named profile; ``custom`` takes its deadlines from the arguments."""
    extended = frozenset(extended_subjects)
    if code == "decreto-11034":
        return LegalProfile(
            code,
            "Decreto 11.034/2022",
            reply=Deadline(7, "calendar_days"),
            history=Deadline(5, "calendar_days"),
            basis="art. 13: resposta em até 7 dias corridos; art. 12: histórico em até "
            "5 dias corridos",
        )
    if code == "decreto-6523":
        return LegalProfile(
            code,
            "Decreto 6.523/2008",
            reply=Deadline(5, "business_days"),
            history=Deadline(72, "hours"),
            basis="art. 17: reclamação resolvida em até 5 dias úteis; art. 16: histórico "
            "em até 72 horas",
        )
    if code == "ans":
        return LegalProfile(
            code,
            "ANS (RN 395/2016)",
            reply=Deadline(5, "business_days"),
            extended_reply=Deadline(10, "business_days"),
            extended_subjects=extended,
            history=Deadline(72, "hours"),
            basis="resposta em até 5 dias úteis (10 para alta complexidade e internação "
            "eletiva); acesso aos registros em até 72 horas",
        )
    if code == "custom":
        return LegalProfile(
            code,
            "Personalizado",
            reply=Deadline.parse(custom_reply),
            extended_reply=Deadline.parse(custom_extended_reply) if custom_extended_reply else None,
            extended_subjects=extended,
            history=Deadline.parse(custom_history),
            basis="prazos definidos na configuração",
        )
    raise ValueError(f"{code!r} is not a legal profile ({', '.join(PROFILE_CODES)})")


def easter(year: int) -> date:
    """Western Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * l_) // 433
    month = (h + l_ - 7 * m + 90) // 25
    day = (h + l_ - 7 * m + 33 * month + 19) % 32
    return date(year, month, day)


OPTIONAL_DAYS = ("carnival", "ash_wednesday", "corpus_christi", "christmas_eve", "new_years_eve")


def _optional_days(year: int, names: Iterable[str]) -> dict[date, str]:
    """Days the ``holidays`` package files as optional (ponto facultativo), by our own
    rule so a package update can't move them."""
    e = easter(year)
    table = {
        "carnival": [(e - timedelta(days=48), "Carnaval"), (e - timedelta(days=47), "Carnaval")],
        "ash_wednesday": [(e - timedelta(days=46), "Quarta-feira de Cinzas")],
        "corpus_christi": [(e + timedelta(days=60), "Corpus Christi")],
        "christmas_eve": [(date(year, 12, 24), "Véspera de Natal")],
        "new_years_eve": [(date(year, 12, 31), "Véspera de Ano-Novo")],
    }
    out: dict[date, str] = {}
    for name in names:
        for day, label in table[name]:
            out[day] = label
    return out


def parse_extra_holiday(text: str) -> tuple[int | None, int, int]:
    """``YYYY-MM-DD`` → (year, month, day); ``MM-DD`` → (None, month, day)."""
    raw = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            d = date.fromisoformat(raw)
            return d.year, d.month, d.day
        if re.fullmatch(r"\d{2}-\d{2}", raw):
            month, day = int(raw[:2]), int(raw[3:])
            date(2024, month, day)  # validates (2024: leap year, so 02-29 passes)
            return None, month, day
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a date: use YYYY-MM-DD or MM-DD")


class HolidayCalendar:
    """Brazilian national holidays plus the configured optional, state and local ones."""

    def __init__(
        self,
        state: str | None = None,
        optional: Iterable[str] = ("carnival",),
        extra: Iterable[str] = (),
    ) -> None:
        self.state = state or None
        if self.state and self.state not in holidays.Brazil.subdivisions:
            raise ValueError(f"{state!r} is not a Brazilian state code (e.g. SP, RJ, MG)")
        self.optional = tuple(optional)
        unknown = [n for n in self.optional if n not in OPTIONAL_DAYS]
        if unknown:
            raise ValueError(
                f"unknown optional day(s) {', '.join(unknown)} ({', '.join(OPTIONAL_DAYS)})"
            )
        self.extra = tuple(parse_extra_holiday(x) for x in extra)
        self._years: dict[int, dict[date, str]] = {}

    def _year(self, year: int) -> dict[date, str]:
        table = self._years.get(year)
        if table is None:
            table = dict(_national(year, self.state))
            table.update(_optional_days(year, self.optional))
            for y, month, day in self.extra:
                if y is None or y == year:
                    try:
                        table[date(year, month, day)] = "Feriado local"
                    except ValueError:  # 02-29 in a common year
                        pass
            self._years[year] = table
        return table

    def holiday_name(self, day: date) -> str | None:
        return self._year(day.year).get(day)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._year(day.year)


@lru_cache(maxsize=256)
def _national(year: int, state: str | None) -> dict[date, str]:
    return dict(holidays.Brazil(years=year, subdiv=state, language="pt_BR").items())


def add_business_days(start: date, count: int, calendar: HolidayCalendar) -> date:
    """The ``count``-th business day after ``start`` (``start`` itself not counted)."""
    day = start
    left = count
    while left > 0:
        day += timedelta(days=1)
        if calendar.is_business_day(day):
            left -= 1
    return day


def end_of_day(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz).astimezone(UTC)


def due_at(
    opened_at: datetime, deadline: Deadline, tz: tzinfo, calendar: HolidayCalendar
) -> datetime:
    """When a request registered at ``opened_at`` (aware) must be answered (UTC)."""
    if deadline.unit == "hours":
        return (opened_at + timedelta(hours=deadline.amount)).astimezone(UTC)
    local_day = opened_at.astimezone(tz).date()
    if deadline.unit == "calendar_days":
        return end_of_day(local_day + timedelta(days=deadline.amount), tz)
    return end_of_day(add_business_days(local_day, deadline.amount, calendar), tz)
