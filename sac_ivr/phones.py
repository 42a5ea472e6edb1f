"""Brazilian phone numbers as Asterisk hands them over, normalised to E.164.

Caller IDs arrive as ``11987654321``, ``011987654321``, ``0 21 11 98765-4321``
(carrier selection code), ``5511987654321`` or ``+5511987654321``; phonenumbers'
Brazilian metadata knows the trunk prefix and carrier codes, so we let it decide.
"""

from __future__ import annotations

import re

import phonenumbers

_JUNK = re.compile(r"[\s\-().]")


def normalize_phone(raw: str | None, default_region: str = "BR") -> str | None:
    """E.164 (``+5511987654321``) for a valid number, else None.

    Anonymous/withheld caller IDs ("anonymous", "unknown", empty) give None.
    """
    if not raw:
        return None
    text = _JUNK.sub("", raw.strip())
    if not text or not re.fullmatch(r"\+?\d{8,20}", text):
        return None
    candidates = [text]
    if not text.startswith("+") and text.startswith("55") and len(text) in (12, 13):
        candidates.insert(0, "+" + text)  # country code without "+": 55 11 9xxxx-xxxx
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, default_region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None


def is_mobile(e164: str | None) -> bool:
    """Can this number receive SMS? (Brazilian mobiles: 9 digits starting with 9.)"""
    if not e164:
        return False
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(parsed) in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def mask_phone(e164_or_raw: str | None) -> str | None:
    """Show only the last 4 digits: safe for public pages and logs."""
    if not e164_or_raw:
        return None
    digits = re.sub(r"\D", "", e164_or_raw)
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + digits[-4:]
