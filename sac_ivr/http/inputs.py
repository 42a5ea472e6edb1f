"""Customer identifiers typed into the API: one check each, one message each, so
every endpoint refuses a bad phone or CPF/CNPJ the same way (400 naming the field)."""

from __future__ import annotations

from sac_ivr.customers import InvalidDocument, normalize_document
from sac_ivr.http.errors import bad_request
from sac_ivr.phones import normalize_phone

MAX_INPUT = 40


def phone_param(raw: str | None, field: str = "phone") -> str | None:
    """E.164 for a Brazilian number in any usual format; None when empty; else 400."""
    text = (raw or "").strip()
    if not text:
        return None
    e164 = normalize_phone(text[:MAX_INPUT])
    if e164 is None:
        raise bad_request(
            f"{field} is not a valid Brazilian phone number (e.g. +5511987654321)", field=field
        )
    return e164


def document_param(raw: str | None, field: str = "document") -> str | None:
    """A valid CPF/CNPJ without punctuation; None when empty; else 400 with the reason."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return normalize_document(text)
    except InvalidDocument as exc:
        raise bad_request(str(exc), field=field) from None
