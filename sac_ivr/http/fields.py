"""Reusable ``Annotated`` field types for request and response models.

Each request type runs one of the hardened readers of :mod:`sac_ivr.http.inputs`
in a ``BeforeValidator``, on the raw text (query, path) or JSON value (body), and
states the same limits in its JSON schema, so that the OpenAPI document and the
check come from one declaration. The readers raise
:class:`~sac_ivr.http.errors.ApiError`, which pydantic lets through unchanged (it
only collects ``ValueError``/``AssertionError``): the answer is the 400 the reader
has always given, naming the field. An absent or empty parameter takes the
model field's default.

The field name in messages is the model's field name without a trailing ``_``
(``from_`` is the ``from`` parameter; models use :data:`WIRE_NAMES` as their alias
generator).

Response types serialise as the API always wrote them: instants with
``datetime.isoformat()`` (``+00:00``, not pydantic's ``Z``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any

from annotated_types import GroupedMetadata, Interval
from pydantic import BeforeValidator, PlainSerializer, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticUseDefault

from sac_ivr.http.errors import bad_request
from sac_ivr.http.inputs import (
    DATE_RANGE_TEXT,
    MAX_INT_DIGITS,
    document_param,
    parse_bool,
    parse_choice,
    parse_datetime,
    parse_id,
    parse_int,
    phone_param,
    query_text,
)

# The largest id a path accepts (12 digits).
MAX_ID = 10**MAX_INT_DIGITS - 1
DATE_DESCRIPTION = f"Years {DATE_RANGE_TEXT}."
PHONE_MAX = 40
DOCUMENT_MAX = 40


def wire_name_of(field_name: str) -> str:
    """The name a client writes: the field's, without a trailing ``_`` (``from_``)."""
    return field_name.rstrip("_")


WIRE_NAMES: Callable[[str], str] = wire_name_of


def wire_name(info: ValidationInfo) -> str:
    return wire_name_of(info.field_name or "value")


def _raw_text(value: Any, name: str) -> str | None:
    """A query or path value is text."""
    if value is None or isinstance(value, str):
        return value
    raise bad_request(f"{name} must be a string", field=name)


def _blank(raw: str | None) -> bool:
    return not (raw or "").strip()


# ------------------------------------------------------------------ query parameters


class QueryInt(GroupedMetadata):
    """A whole number in ``low..high`` written in ASCII digits."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def __iter__(self) -> Iterator[Any]:
        low, high = self.low, self.high

        def read(value: Any, info: ValidationInfo) -> int:
            name = wire_name(info)
            raw = _raw_text(value, name)
            if raw is None or raw == "":
                raise PydanticUseDefault()
            return parse_int(raw, name, low, low, high)

        # The bounds first: pydantic documents them only on the inner schema.
        yield from Interval(ge=low, le=high)
        yield BeforeValidator(read)


class QueryBool(GroupedMetadata):
    """``true``/``false`` (or ``1``/``0``), any case."""

    def __iter__(self) -> Iterator[Any]:
        def read(value: Any, info: ValidationInfo) -> bool:
            name = wire_name(info)
            raw = _raw_text(value, name)
            if _blank(raw):
                raise PydanticUseDefault()
            return parse_bool(raw, name)

        yield BeforeValidator(read)


class QueryChoice(GroupedMetadata):
    """One of ``choices``, exactly."""

    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices

    def __iter__(self) -> Iterator[Any]:
        choices = self.choices

        def read(value: Any, info: ValidationInfo) -> str | None:
            name = wire_name(info)
            raw = _raw_text(value, name)
            if _blank(raw):
                raise PydanticUseDefault()
            return parse_choice(raw, name, choices)

        yield BeforeValidator(read)
        yield WithJsonSchema({"enum": list(choices)})


class QueryText(GroupedMetadata):
    """A free-text filter: stripped, no control characters, at most ``limit`` characters."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __iter__(self) -> Iterator[Any]:
        limit = self.limit

        def read(value: Any, info: ValidationInfo) -> str | None:
            name = wire_name(info)
            return query_text(_raw_text(value, name), name, limit)

        yield BeforeValidator(read)
        yield WithJsonSchema({"type": "string", "maxLength": limit})


class QueryDatetime(GroupedMetadata):
    """An ISO 8601 date or date-time (UTC when it has no offset), read as UTC."""

    def __iter__(self) -> Iterator[Any]:
        def read(value: Any, info: ValidationInfo) -> datetime | None:
            name = wire_name(info)
            return parse_datetime(_raw_text(value, name), name)

        yield BeforeValidator(read)
        yield WithJsonSchema({"type": "string", "description": DATE_DESCRIPTION})


class Reads(GroupedMetadata):
    """A parameter read by a feature's own reader, ``read(raw, name)`` (with
    ``with_context``: ``read(raw, name, context)``, for a reader that needs the
    running service, e.g. the protocol number format: the endpoint's validation
    context holds the request under "request"). ``raw`` is None when the
    parameter is absent; the reader raises its 400 itself. ``schema`` documents it.
    With ``json``, the reader gets a body's JSON value as it is (any type)."""

    def __init__(
        self,
        read: Callable[..., Any],
        schema: dict[str, Any] | None = None,
        *,
        with_context: bool = False,
        json: bool = False,
    ) -> None:
        self.read, self.schema, self.with_context, self.json = read, schema, with_context, json

    def __iter__(self) -> Iterator[Any]:
        reader, with_context, json = self.read, self.with_context, self.json

        def read(value: Any, info: ValidationInfo) -> Any:
            name = wire_name(info)
            raw = value if json else _raw_text(value, name)
            if with_context:
                return reader(raw, name, info.context or {})
            return reader(raw, name)

        yield BeforeValidator(read)
        if self.schema is not None:
            yield WithJsonSchema(self.schema)


def _read_phone(value: Any, info: ValidationInfo) -> str | None:
    name = wire_name(info)
    return phone_param(_raw_text(value, name), name)


def _read_document(value: Any, info: ValidationInfo) -> str | None:
    name = wire_name(info)
    return document_param(_raw_text(value, name), name)


# A Brazilian phone number in any usual format, as E.164.
PhoneQuery = Annotated[
    str | None,
    BeforeValidator(_read_phone),
    WithJsonSchema({"type": "string", "maxLength": PHONE_MAX}),
]
# A valid CPF/CNPJ, without punctuation.
DocumentQuery = Annotated[
    str | None,
    BeforeValidator(_read_document),
    WithJsonSchema({"type": "string", "maxLength": DOCUMENT_MAX}),
]


# ------------------------------------------------------------------ path parameters


def _read_id(value: Any, info: ValidationInfo) -> int:
    name = wire_name(info)
    return parse_id(_raw_text(value, name) or "", name)


# A numeric id in the path: ASCII digits, at most 12.
PathId = Annotated[int, Interval(ge=0, le=MAX_ID), BeforeValidator(_read_id)]


# ------------------------------------------------------------------ responses


def _iso(value: datetime) -> str:
    return value.isoformat()


# An instant, written as ``datetime.isoformat()``.
Timestamp = Annotated[
    datetime,
    PlainSerializer(_iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
