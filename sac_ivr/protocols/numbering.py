"""Protocol number formats.

A format turns (local issue date, sequence value) into the digits the caller hears,
tells which database counter the sequence comes from, and validates a number typed
into the API before any database work.

Check digit (``date-seq-check``): the Damm algorithm (python-stdnum's
``stdnum.damm``) over the first 14 digits. Damm catches every single wrong digit and
every swap of two adjacent digits, the two mistakes people make when they read a
number over the phone and type it later; Luhn misses ``09``/``90`` swaps.

Overflow: when a counter passes the width its format gives it (a seventh digit in
the daily sequence, say), the number simply grows by one digit. It stays unique
(longer than every number before it), keeps a valid check digit, and the caller
still gets it; :func:`ProtocolFormat.overflowed` lets the issuer log it loudly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from stdnum import damm

from sac_ivr.config import ConfigError, Settings

# How many digits past its normal width a number may grow before lookups refuse it.
MAX_OVERFLOW_DIGITS = 3


class InvalidProtocolNumber(ValueError):
    """A number that this service could never have issued."""


@dataclass(frozen=True)
class ProtocolFormat:
    """Base: subclasses give the layout; all numbers are plain decimal digits."""

    name: str = "base"

    def counter_key(self, local_date: date) -> str:
        raise NotImplementedError

    def render(self, local_date: date, sequence: int) -> str:
        raise NotImplementedError

    def overflowed(self, sequence: int) -> bool:
        raise NotImplementedError

    def validate(self, number: str) -> str:
        """Return the number if it is well formed, else raise InvalidProtocolNumber."""
        raise NotImplementedError

    @property
    def length(self) -> int:
        raise NotImplementedError


def _require_digits(number: str, low: int, high: int) -> None:
    if not number:
        raise InvalidProtocolNumber("the protocol number is empty")
    if len(number) > 64:
        raise InvalidProtocolNumber("the protocol number is far too long")
    if not number.isascii() or not number.isdigit():
        raise InvalidProtocolNumber("a protocol number has digits only")
    if not low <= len(number) <= high:
        expected = f"{low} digits" if low == high else f"{low} to {high} digits"
        raise InvalidProtocolNumber(f"a protocol number has {expected}, this one has {len(number)}")


def _require_date(text: str) -> date:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise InvalidProtocolNumber(f"{text} is not a valid date (YYYYMMDD)") from None


SEQUENCE_DIGITS = 6


@dataclass(frozen=True)
class DateSequenceCheck(ProtocolFormat):
    """``YYYYMMDD`` + 6-digit daily sequence + 1 Damm check digit: 15 digits."""

    name: str = "date-seq-check"

    @property
    def length(self) -> int:
        return 8 + SEQUENCE_DIGITS + 1

    def counter_key(self, local_date: date) -> str:
        return f"day:{local_date:%Y%m%d}"

    def render(self, local_date: date, sequence: int) -> str:
        body = f"{local_date:%Y%m%d}{sequence:0{SEQUENCE_DIGITS}d}"
        return body + damm.calc_check_digit(body)

    def overflowed(self, sequence: int) -> bool:
        return sequence >= 10**SEQUENCE_DIGITS

    def validate(self, number: str) -> str:
        _require_digits(number, self.length, self.length + MAX_OVERFLOW_DIGITS)
        if not damm.is_valid(number):
            raise InvalidProtocolNumber("the check digit (last digit) does not match")
        _require_date(number[:8])
        return number


@dataclass(frozen=True)
class AnsLayout(ProtocolFormat):
    """6-digit ANS registry + ``YYYYMMDD`` + 6-digit daily sequence: 20 digits.

    The layout is common among health plans; RN 395/623 do not prescribe it.
    """

    registry: str = "000000"
    name: str = "ans"

    @property
    def length(self) -> int:
        return 6 + 8 + SEQUENCE_DIGITS

    def counter_key(self, local_date: date) -> str:
        return f"day:{local_date:%Y%m%d}"

    def render(self, local_date: date, sequence: int) -> str:
        return f"{self.registry}{local_date:%Y%m%d}{sequence:0{SEQUENCE_DIGITS}d}"

    def overflowed(self, sequence: int) -> bool:
        return sequence >= 10**SEQUENCE_DIGITS

    def validate(self, number: str) -> str:
        _require_digits(number, self.length, self.length + MAX_OVERFLOW_DIGITS)
        if number[:6] != self.registry:
            raise InvalidProtocolNumber(
                f"this number belongs to ANS registry {number[:6]}, not {self.registry}"
            )
        _require_date(number[6:14])
        return number


@dataclass(frozen=True)
class GlobalSequence(ProtocolFormat):
    """One sequence for all days, zero-padded to ``width`` digits."""

    width: int = 12
    name: str = "sequence"

    @property
    def length(self) -> int:
        return self.width

    def counter_key(self, local_date: date) -> str:
        return "global"

    def render(self, local_date: date, sequence: int) -> str:
        return f"{sequence:0{self.width}d}"

    def overflowed(self, sequence: int) -> bool:
        return sequence >= 10**self.width

    def validate(self, number: str) -> str:
        _require_digits(number, self.width, self.width + MAX_OVERFLOW_DIGITS)
        if int(number) == 0:
            raise InvalidProtocolNumber("0 is never issued")
        return number


FORMAT_NAMES = ("date-seq-check", "ans", "sequence")


def make_format(settings: Settings) -> ProtocolFormat:
    """The configured format; raises ConfigError with the reason when it can't be used."""
    name = settings.protocol_format
    if name == "date-seq-check":
        return DateSequenceCheck()
    if name == "ans":
        registry = settings.ans_registry.strip()
        if not re.fullmatch(r"\d{6}", registry):
            raise ConfigError(
                "ans_registry: protocol_format=ans needs the operator's 6-digit ANS registry, "
                f"got {settings.ans_registry!r}"
            )
        return AnsLayout(registry=registry)
    if name == "sequence":
        width = settings.protocol_sequence_width
        if not 4 <= width <= 30:
            raise ConfigError(f"protocol_sequence_width: must be 4 to 30 digits, got {width}")
        return GlobalSequence(width=width)
    raise ConfigError(f"protocol_format: {name!r} is not one of {', '.join(FORMAT_NAMES)}")


def spoken_groups(number: str, group_size: int) -> list[str]:
    """Split digits into groups read with a short pause between them.

    A lone digit at the end joins the group before it: "…123 4" would sound like a
    separate number.
    """
    groups = [number[i : i + group_size] for i in range(0, len(number), group_size)]
    if len(groups) > 1 and len(groups[-1]) == 1 and group_size > 1:
        last = groups.pop()
        groups[-1] += last
    return groups
