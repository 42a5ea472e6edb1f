"""Everything a client sends, read in one place: query and path parameters, JSON
bodies, headers, and the customer identifiers typed into them.

Every reader here returns a value or raises :class:`~sac_ivr.http.errors.ApiError`
(400 naming the field, 415 for a body that is not JSON); nothing else escapes, so no
input can reach the database or a computation it would break (a 500). The rules:

- numbers: ASCII digits only (``²`` and ``٣`` are refused, not read as 2 and 3),
  within the documented range;
- dates: ASCII ISO 8601, years 1900 to 9000, so that no later computation (time zone
  shifts, + N days) can overflow;
- text: no control characters (line breaks where the field allows them), no lone
  surrogates, a length cap;
- JSON: ``application/json``, strict UTF-8, no lone surrogates, no duplicate keys, no
  NaN/Infinity, at most :data:`MAX_JSON_DEPTH` levels of nesting, within the
  application's size cap (413 past it);
- headers: printable ASCII (a token is ASCII; a non-UTF-8 byte is a 400).

Property tests (``tests/test_inputs_properties.py``) feed arbitrary text and bytes to
every reader; the whole API is fuzzed from its OpenAPI document
(``tests/test_api_fuzz.py``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from email.headerregistry import Address
from typing import Any

from aiohttp import hdrs, web

from sac_ivr.customers import InvalidDocument, normalize_document
from sac_ivr.http.errors import ApiError, Handler, bad_request
from sac_ivr.phones import normalize_phone

MAX_INPUT = 40
MAX_INT_DIGITS = 12
MAX_JSON_DEPTH = 32
MAX_DATETIME_TEXT = 40

# Accepted dates: the years the service can compute with (+N days, any UTC offset).
DATE_MIN = datetime(1900, 1, 1, tzinfo=UTC)
DATE_MAX = datetime(9000, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
DATE_RANGE_TEXT = "1900-01-01 to 9000-12-31"

_ASCII_DIGITS = re.compile(r"[0-9]+")
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")

TRUE_WORDS = ("true", "1")
FALSE_WORDS = ("false", "0")


# ------------------------------------------------------------------ plain values


def parse_int(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    """A whole number in ``low..high`` written in ASCII digits; ``default`` when absent."""
    if raw is None or raw == "":
        return default
    if len(raw) > MAX_INT_DIGITS or not _ASCII_DIGITS.fullmatch(raw):
        raise bad_request(f"{name} must be a whole number (digits 0-9)", field=name)
    value = int(raw)
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}", field=name)
    return value


def parse_bool(raw: str | None, name: str, default: bool = False) -> bool:
    """``true``/``false`` (or ``1``/``0``), any case; ``default`` when absent."""
    text = (raw or "").strip().lower()
    if not text:
        return default
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise bad_request(f"{name} must be true or false", field=name)


def parse_choice(
    raw: str | None, name: str, choices: Collection[str], default: str | None = None
) -> str | None:
    """One of ``choices`` (exactly); ``default`` when absent."""
    text = (raw or "").strip()
    if not text:
        return default
    if text not in choices:
        raise bad_request(f"{name} must be one of {', '.join(choices)}", field=name)
    return text


def check_text(value: str, name: str, limit: int, *, lines: bool = False) -> str:
    """``value`` stripped, or 400: too long, control characters (line breaks and tabs
    allowed with ``lines``), lone surrogates."""
    value = value.strip()
    if len(value) > limit:
        raise bad_request(f"{name} must be at most {limit} characters", field=name)
    if (_CONTROL_BUT_LINES if lines else _CONTROL).search(value):
        raise bad_request(f"{name} contains control characters", field=name)
    if _SURROGATE.search(value):
        raise bad_request(f"{name} is not valid Unicode text", field=name)
    return value


def query_text(raw: str | None, name: str, limit: int) -> str | None:
    """A free-text filter: stripped, checked by :func:`check_text`; None when empty."""
    if raw is None:
        return None
    return check_text(raw, name, limit) or None


def parse_datetime(
    raw: str | None, name: str, tz: tzinfo = UTC, *, day_end: bool = False
) -> datetime | None:
    """An ISO 8601 date-time, or a date alone (``YYYY-MM-DD``: its midnight in ``tz``;
    with ``day_end`` the next midnight, so that the day is included). A time without
    an offset is in ``tz``. The answer is in UTC, within :data:`DATE_RANGE_TEXT`."""
    text = (raw or "").strip()
    if not text:
        return None
    invalid = bad_request(
        f"{name} must be an ISO 8601 date (YYYY-MM-DD) or date-time between {DATE_RANGE_TEXT}",
        field=name,
    )
    if len(text) > MAX_DATETIME_TEXT or not text.isascii():
        raise invalid
    try:
        if _DATE_ONLY.fullmatch(text):
            day = date.fromisoformat(text)
            if not DATE_MIN.year <= day.year <= DATE_MAX.year:
                raise invalid
            if day_end:
                day += timedelta(days=1)
            return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise invalid from None
    # The year is checked before any shift: 0001-01-01T00:00+14:00 is not a moment
    # Python can hold in UTC.
    if not DATE_MIN.year <= value.year <= DATE_MAX.year:
        raise invalid
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


# ------------------------------------------------------------------ path parameters


def parse_id(raw: str, name: str = "id") -> int:
    """A numeric id (ASCII digits, at most 12), or 400."""
    if len(raw) > MAX_INT_DIGITS or not _ASCII_DIGITS.fullmatch(raw):
        raise bad_request(f"{name} must be a whole number (digits 0-9)", field=name)
    return int(raw)


def path_int(request: web.Request, name: str = "id") -> int:
    """A numeric id in the path (ASCII digits, at most 12), or 400."""
    return parse_id(request.match_info.get(name, ""), name)


# ------------------------------------------------------------------ headers


def header_ascii(request: web.Request, name: str, limit: int = 8192) -> str | None:
    """A header's value when it is printable ASCII (None when absent), else 400.

    aiohttp hands non-UTF-8 bytes over as lone surrogates; no header this service
    reads (tokens, media types) has any reason to hold anything but ASCII.
    """
    value = request.headers.get(name)
    if value is None:
        return None
    if len(value) > limit or not _PRINTABLE_ASCII.fullmatch(value):
        raise bad_request(f"the {name} header must be printable ASCII", field=name)
    return value


# ------------------------------------------------------------------ customer identifiers


def phone_param(raw: str | None, field: str = "phone") -> str | None:
    """E.164 for a Brazilian number in any usual format; None when empty; else 400."""
    text = (raw or "").strip()
    if not text:
        return None
    e164 = normalize_phone(text[:MAX_INPUT]) if text.isascii() else None
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
    if not text.isascii():
        raise bad_request("CPF/CNPJ has digits (and, in a CNPJ, capital letters) only", field=field)
    try:
        return normalize_document(text)
    except InvalidDocument as exc:
        raise bad_request(str(exc), field=field) from None


def valid_address(text: str) -> bool:
    """A plain check of an address typed by an agent: one @, a dotted domain, no
    spaces or angle brackets; the SMTP server has the last word."""
    if len(text) > 254 or any(c in text for c in ' <>,;"()[]\\'):
        return False
    local, at, domain = text.rpartition("@")
    if not at or not local or len(local) > 64 or "." not in domain:
        return False
    labels = domain.split(".")
    if any(not label or len(label) > 63 for label in labels) or len(labels[-1]) < 2:
        return False
    try:
        Address(addr_spec=text)
    except (ValueError, IndexError):
        return False
    return True


def email_param(raw: str, field: str = "email") -> str:
    """An e-mail address (the domain in lower case) that the e-mail sender accepts, or 400."""
    text = check_text(raw, field, 254)
    local, at, domain = text.rpartition("@")
    if at and local:
        text = f"{local}@{domain.lower()}"
    try:
        ok = valid_address(text)
    except Exception:  # the e-mail parser has more ways to fail than ValueError
        ok = False
    if not ok:
        raise bad_request(f"{field} is not an e-mail address", field=field)
    return text


# ------------------------------------------------------------------ JSON bodies


class _JsonRefused(ValueError):
    """A JSON document that parses but that we refuse (duplicate key, NaN, ...)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JsonRefused(f"the key {key!r} appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _JsonRefused(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _JsonRefused("a number is too large")
    return value


def _check_tree(value: Any) -> None:
    """Depth and text of a parsed document (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "body")]
    while stack:
        item, depth, field = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise bad_request(f"{field} is not valid Unicode text", field=field)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise bad_request(
                f"the body is nested more than {MAX_JSON_DEPTH} levels deep", field="body"
            )
        if isinstance(item, dict):
            for key, child in item.items():
                name = key if depth == 1 else field
                if _SURROGATE.search(key):
                    raise bad_request("a key is not valid Unicode text", field=field)
                stack.append((child, depth + 1, name))
        else:
            stack.extend((child, depth + 1, field) for child in item)


def parse_json(raw: bytes) -> Any:
    """A JSON document read strictly (see the module's docstring), or 400."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the body is not UTF-8 text", field="body") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except RecursionError:
        raise bad_request(
            f"the body is nested more than {MAX_JSON_DEPTH} levels deep", field="body"
        ) from None
    except _JsonRefused as exc:
        raise bad_request(f"the body is not valid JSON: {exc}", field="body") from None
    except ValueError as exc:  # JSONDecodeError, and integers of thousands of digits
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "a number is too long"
        raise bad_request(f"the body is not valid JSON: {reason}", field="body") from None
    _check_tree(value)
    return value


def is_json_media_type(request: web.BaseRequest) -> bool:
    """``Content-Type: application/json`` (UTF-8, the only charset JSON has)."""
    if request.content_type != "application/json":
        return False
    charset = request.charset
    return charset is None or charset.lower() in ("utf-8", "utf8")


async def read_json(request: web.Request) -> Any:
    """The request's JSON body. The Content-Type must say so (415 otherwise): a
    cross-site HTML form cannot send that without a CORS preflight."""
    header_ascii(request, "Content-Type")
    if not is_json_media_type(request):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    return parse_json(await request.read())


async def read_object(request: web.Request) -> dict[str, Any]:
    """The request's body as a JSON object, or 400/415."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object", field="body")
    return body


def reject_unknown(body: Mapping[str, Any], allowed: Collection[str]) -> None:
    """400 naming the first field that is not one of ``allowed``."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise bad_request(
            f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(allowed)}",
            field=unknown[0],
        )


# ------------------------------------------------------------------ every request


def _bad_text(text: str) -> bool:
    return "\x00" in text or _SURROGATE.search(text) is not None


def check_request(request: web.Request) -> None:
    """What no handler should ever see: a NUL or an undecodable byte in the path or
    the query (400), a credential header that is not printable ASCII (400)."""
    if _bad_text(request.path):
        raise bad_request("the path holds a NUL or an invalid character", field="path")
    for key, value in request.query.items():
        if _bad_text(key) or _bad_text(value):
            field = key if not _bad_text(key) else "query"
            raise bad_request(f"{field} holds a NUL or an invalid character", field=field)
    header_ascii(request, hdrs.AUTHORIZATION)


@web.middleware
async def input_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    check_request(request)
    return await handler(request)


def printable_ascii(text: str) -> bool:
    return _PRINTABLE_ASCII.fullmatch(text) is not None
