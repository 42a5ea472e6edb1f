"""Property tests of the input layer (sac_ivr/http/inputs.py) and of every feature's
readers built on it: any text or bytes gives a value or a 400/415 ApiError, never
another exception, and what is accepted keeps the promises the rest of the code relies
on (ASCII digits in range, dates that survive + N days and any time zone shift, text
the databases can store).

Derandomized (the same examples every run, so CI is repeatable) and bounded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, MultiDict

from sac_ivr.calls import schemas as calls_schemas
from sac_ivr.config import Settings
from sac_ivr.history import schemas as history_schemas
from sac_ivr.http import inputs
from sac_ivr.http.endpoints import ListQuery, read_query
from sac_ivr.http.errors import ApiError
from sac_ivr.http.listing import _csv_value, csv_safe
from sac_ivr.lifecycle import schemas as lifecycle_schemas
from sac_ivr.lifecycle.config import LifecycleConfig
from sac_ivr.lifecycle.services import EDITABLE_FIELDS
from sac_ivr.notifications import schemas as notifications_schemas
from sac_ivr.panels import schemas as panels_schemas
from sac_ivr.protocols import schemas as protocols_schemas
from sac_ivr.protocols.numbering import DateSequenceCheck
from sac_ivr.reports import schemas as reports_schemas

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Any text, with a bias towards what breaks parsers: digits of other scripts, lone
# surrogates, NUL and controls, ISO-looking dates, huge numbers.
TRICKY = st.sampled_from(
    [
        "²",
        "٣",
        "３",
        "\ud800",
        "\udcff",
        "\x00",
        "\n",
        "9999-12-31",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-23:59",
        "1e999",
        "NaN",
        "9" * 5000,
        "-0",
        "+1",
        " ",
        "",
    ]
)
ANY_TEXT = st.one_of(st.text(), TRICKY, st.lists(TRICKY).map("".join))
ZONES = st.sampled_from(
    [
        UTC,
        ZoneInfo("America/Sao_Paulo"),
        ZoneInfo("Pacific/Kiritimati"),  # +14:00
        timezone(timedelta(hours=-23, minutes=-59)),
    ]
)


def refused(exc: ApiError, *statuses: int) -> None:
    assert exc.status in (statuses or (400,)), exc.status
    assert exc.message


@dataclass
class FakeRequest:
    """What the readers look at in an aiohttp request, holding any text at all (a
    real request object cannot be built with, say, a lone surrogate in a header,
    yet aiohttp hands non-UTF-8 bytes over as exactly that)."""

    query: MultiDict[str] = field(default_factory=MultiDict)
    path: str = "/"
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    match_info: dict[str, str] = field(default_factory=dict)


def query_request(query: dict[str, str]) -> Any:
    return FakeRequest(query=MultiDict(query))


# ------------------------------------------------------------------ plain values


@PROPERTY
@given(raw=st.one_of(st.none(), ANY_TEXT), low=st.integers(0, 10), span=st.integers(0, 10**6))
def test_parse_int_gives_an_ascii_number_in_range_or_a_400(
    raw: str | None, low: int, span: int
) -> None:
    try:
        value = inputs.parse_int(raw, "n", -1, low, low + span)
    except ApiError as exc:
        refused(exc)
        return
    if raw:
        assert raw.isascii() and raw.isdigit() and int(raw) == value
        assert low <= value <= low + span
    else:
        assert value == -1


@PROPERTY
@given(raw=st.one_of(st.none(), ANY_TEXT))
def test_booleans_and_choices(raw: str | None) -> None:
    try:
        assert isinstance(inputs.parse_bool(raw, "flag"), bool)
    except ApiError as exc:
        refused(exc)
    try:
        value = inputs.parse_choice(raw, "pick", ("json", "csv"), "json")
        assert value in ("json", "csv")
    except ApiError as exc:
        refused(exc)


@PROPERTY
@given(raw=ANY_TEXT, limit=st.integers(0, 50), lines=st.booleans())
def test_text_that_passes_can_be_stored(raw: str, limit: int, lines: bool) -> None:
    try:
        value = inputs.check_text(raw, "t", limit, lines=lines)
    except ApiError as exc:
        refused(exc)
        return
    assert len(value) <= limit
    value.encode("utf-8")  # no lone surrogate: SQLite and PostgreSQL take it
    assert "\x00" not in value
    assert all(ord(c) >= 32 or (lines and c in "\n\r\t") for c in value)


@PROPERTY
@given(raw=st.one_of(st.none(), ANY_TEXT), tz=ZONES, day_end=st.booleans())
def test_dates_survive_every_later_computation(raw: str | None, tz: Any, day_end: bool) -> None:
    try:
        value = inputs.parse_datetime(raw, "from", tz, day_end=day_end)
    except ApiError as exc:
        refused(exc)
        return
    if value is None:
        assert not (raw or "").strip()
        return
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    margin = timedelta(days=2)  # the year is checked as written, before the UTC shift
    assert inputs.DATE_MIN - margin <= value <= inputs.DATE_MAX + margin
    for shifted in (value + timedelta(days=3650), value - timedelta(days=3650)):
        shifted.astimezone(tz)
        shifted.astimezone(ZoneInfo("Pacific/Kiritimati"))
    value.isoformat()


@PROPERTY
@given(
    moment=st.datetimes(
        min_value=datetime(1900, 1, 2), max_value=datetime(9000, 12, 30), timezones=ZONES
    ),
    tz=ZONES,
)
def test_every_iso_moment_in_range_is_read_back_exactly(moment: datetime, tz: Any) -> None:
    text = moment.isoformat()
    value = inputs.parse_datetime(text, "from", tz)
    # (compared in UTC: Python calls an ambiguous local time unequal to any other zone's)
    assert value == datetime.fromisoformat(text).astimezone(UTC)


@PROPERTY
@given(raw=st.one_of(ANY_TEXT, st.from_regex(r"\+?55 ?\(?[0-9]{2}\)? ?9?[0-9]{4}-?[0-9]{4}")))
def test_phones_are_e164_or_a_400(raw: str) -> None:
    try:
        value = inputs.phone_param(raw)
    except ApiError as exc:
        refused(exc)
        return
    assert value is None or (value.startswith("+55") and value[1:].isdigit() and value.isascii())


@PROPERTY
@given(raw=st.one_of(ANY_TEXT, st.from_regex(r"[0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2}")))
def test_documents_are_normalised_or_a_400(raw: str) -> None:
    try:
        value = inputs.document_param(raw)
    except ApiError as exc:
        refused(exc)
        return
    assert value is None or (value.isascii() and value.isalnum() and len(value) in (11, 14))


@PROPERTY
@given(raw=st.one_of(ANY_TEXT, st.emails(), st.emails().map(lambda e: e + "\ud800")))
def test_email_addresses_are_checked_or_a_400(raw: str) -> None:
    try:
        value = inputs.email_param(raw)
    except ApiError as exc:
        refused(exc)
        return
    assert "@" in value
    value.encode("utf-8")


def test_csv_cells_never_start_a_formula() -> None:
    for text in ("=1+1", "+5511987654321", "-2", "@SUM(A1)", "\tx", "\rx", "ok", ""):
        assert not csv_safe(text).startswith(("=", "+", "-", "@", "\t", "\r"))
    assert csv_safe("ok") == "ok"
    # Numbers are numbers, not formulas: a negative overdue_hours stays as it is.
    assert _csv_value(-3.5) == -3.5 and _csv_value(None) == ""
    assert _csv_value(["=x"]) == '["=x"]'  # a JSON list starts with "["


@PROPERTY
@given(text=ANY_TEXT)
def test_csv_safe_property(text: str) -> None:
    assert not csv_safe(text).startswith(("=", "+", "-", "@", "\t", "\r"))
    assert csv_safe(text).endswith(text)


# ------------------------------------------------------------------ JSON bodies

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@PROPERTY
@given(raw=st.one_of(st.binary(), ANY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_any_bytes_are_json_or_a_400(raw: bytes) -> None:
    try:
        value = inputs.parse_json(raw)
    except ApiError as exc:
        refused(exc)
        return
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # storable, printable


@PROPERTY
@given(value=JSON_VALUES)
def test_well_formed_json_round_trips(value: Any) -> None:
    raw = json.dumps(value).encode()
    try:
        parsed = inputs.parse_json(raw)
    except ApiError as exc:  # only for what the reader refuses on purpose
        refused(exc)
        assert any(
            0xD800 <= ord(c) <= 0xDFFF for c in json.dumps(value, ensure_ascii=False)
        ) or any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(value))
        return
    assert parsed == value


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


@pytest.mark.parametrize("depth", [1, inputs.MAX_JSON_DEPTH, inputs.MAX_JSON_DEPTH + 1, 5000])
def test_json_nesting_cap(depth: int) -> None:
    for open_, close in (("[", "]"), ('{"a":', "}")):
        raw = (open_ * depth + "1" + close * depth).encode()
        if depth <= inputs.MAX_JSON_DEPTH:
            assert inputs.parse_json(raw) is not None
        else:
            with pytest.raises(ApiError) as caught:
                inputs.parse_json(raw)
            assert caught.value.details == {"field": "body"}


# ------------------------------------------------------- every feature's readers

QUERY_NAMES = st.sampled_from(
    [
        "limit",
        "offset",
        "format",
        "phone",
        "document",
        "status",
        "overdue",
        "due_within_days",
        "from",
        "until",
        "protocol",
        "agent",
        "outcome",
        "channel",
        "view",
        "pending",
    ]
)
QUERIES = st.dictionaries(QUERY_NAMES, ANY_TEXT, max_size=6)
TZ = ZoneInfo("America/Sao_Paulo")


@PROPERTY
@given(query=QUERIES)
def test_every_query_reader_gives_a_value_or_a_400(query: dict[str, str]) -> None:
    request = query_request(query)
    readers = [
        lambda r: read_query(ListQuery, r),
        lambda r: read_query(protocols_schemas.ProtocolQuery, r).to_filter(),
        lambda r: read_query(calls_schemas.CallQuery, r).to_filter(),
        lambda r: read_query(notifications_schemas.NotificationQuery, r),
        panels_schemas.parse_view,
        lambda r: read_query(history_schemas.FormatQuery, r),
        lambda r: read_query(history_schemas.ListFlagsQuery, r),
        lambda r: history_schemas.parse_customer(r.query, from_body=False),
        lambda r: read_query(reports_schemas.ReportTableQuery, r, tz=TZ).params(),
    ]
    for reader in readers:
        try:
            reader(request)
        except ApiError as exc:
            refused(exc)


LIFECYCLE = LifecycleConfig.from_settings(Settings.load(env={}, overrides={}))
BODY_FIELDS = st.sampled_from(
    [
        *EDITABLE_FIELDS,
        "to_status",
        "customer_note",
        "internal_note",
        "phone",
        "document",
        "delivery",
        "email",
        "protocol",
        "via",
        "token",
    ]
)
BODIES = st.dictionaries(BODY_FIELDS, st.one_of(ANY_TEXT, JSON_VALUES), max_size=5)


@PROPERTY
@given(body=BODIES)
def test_every_body_reader_gives_a_value_or_a_400(body: dict[str, Any]) -> None:
    readers = [
        lambda b: lifecycle_schemas.parse_changes(b, LIFECYCLE),
        lambda b: lifecycle_schemas.parse_transition(b, LIFECYCLE),
        lambda b: history_schemas.parse_request_body(b, DateSequenceCheck()),
        history_schemas.parse_delivered_body,
        panels_schemas.parse_session_body,
    ]
    for reader in readers:
        try:
            out = reader(body)
        except ApiError as exc:
            refused(exc)
            continue
        json.dumps(out, ensure_ascii=False).encode("utf-8")


@PROPERTY
@given(value=ANY_TEXT)
def test_path_ids_and_headers(value: str) -> None:
    request: Any = FakeRequest(match_info={"id": value})
    try:
        assert 0 <= inputs.path_int(request) < 10**12
    except ApiError as exc:
        refused(exc)
    request = FakeRequest(headers=CIMultiDict({"Authorization": value}))
    try:
        header = inputs.header_ascii(request, "Authorization")
    except ApiError as exc:
        refused(exc)
    else:
        assert header is not None and header.isascii() and header.isprintable()


@PROPERTY
@given(path=ANY_TEXT, query=QUERIES)
def test_the_request_guard(path: str, query: dict[str, str]) -> None:
    request: Any = FakeRequest(query=MultiDict(query), path="/" + path)
    try:
        inputs.check_request(request)
    except ApiError as exc:
        refused(exc)
        assert "\x00" in request.path + "".join(query.values()) or any(
            0xD800 <= ord(c) <= 0xDFFF
            for c in request.path + "".join(query) + "".join(query.values())
        )
