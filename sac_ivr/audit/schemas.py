"""The access log and the lookup counts over HTTP: views and query parameters."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, create_model

from sac_ivr.audit.services import ACTIONS, OUTCOMES
from sac_ivr.audit.tables import AccessLogEntry as AccessLogRow
from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import CsvExport, ListQuery, PageOf, ResponseModel
from sac_ivr.http.errors import bad_request
from sac_ivr.http.fields import DocumentQuery, PhoneQuery, QueryDatetime, Reads, Timestamp
from sac_ivr.protocols.numbering import InvalidProtocolNumber

ACTOR_MAX = 64


class AccessLogEntry(ResponseModel):
    id: int
    at: Timestamp
    actor: str = Field(description="The token's name.")
    role: Literal["agent", "supervisor", "admin"]
    action: Literal[ACTIONS]  # type: ignore[valid-type]
    endpoint: str = Field(description="e.g. GET /api/v1/protocols/{number}")
    client: str | None = Field(default=None, description="The client's address.")
    searched_by: list[Literal["phone", "document"]] = Field(
        description="What the read searched for (the value itself is kept only as "
        "a keyed hash: filter with phone= or document=)."
    )
    rows: int = Field(description="Records the answer held.")
    protocols: list[str]


class AccessLogEntryPage(PageOf[AccessLogEntry]):
    pass


def entry_view(entry: AccessLogRow, protocols: list[str]) -> AccessLogEntry:
    searched = [k for k, h in (("phone", entry.phone_hash), ("document", entry.document_hash)) if h]
    return AccessLogEntry(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        role=entry.role,  # type: ignore[arg-type]
        action=entry.action,
        endpoint=entry.endpoint,
        client=entry.client,
        searched_by=searched,  # type: ignore[arg-type]
        rows=entry.rows,
        protocols=protocols,
    )


ACCESS_LOG_CSV = CsvExport(
    columns=(
        "id",
        "at",
        "actor",
        "role",
        "action",
        "endpoint",
        "client",
        "searched_by",
        "rows",
        "protocols",
    ),
    filename="access-log.csv",
)
LIST_COLUMNS = ACCESS_LOG_CSV.columns

PublicLookupDay = create_model(  # type: ignore[call-overload]
    "PublicLookupDay",
    __base__=ResponseModel,
    day=(str, Field(json_schema_extra={"format": "date"})),
    **{outcome: (int, ...) for outcome in OUTCOMES},
)


class PublicLookupDayPage(PageOf[PublicLookupDay]):  # type: ignore[valid-type]
    pass


PUBLIC_LOOKUPS_CSV = CsvExport(columns=("day", *OUTCOMES), filename="public-lookups.csv")
COUNT_COLUMNS = PUBLIC_LOOKUPS_CSV.columns


def _actor(raw: str | None, name: str) -> str | None:
    actor = (raw or "").strip()
    if len(actor) > ACTOR_MAX:
        raise bad_request(f"actor must be at most {ACTOR_MAX} characters", field="actor")
    return actor or None


def _action(raw: str | None, name: str) -> str | None:
    action = (raw or "").strip()
    if action and action not in ACTIONS:
        raise bad_request(f"action must be one of {', '.join(ACTIONS)}", field="action")
    return action or None


def _protocol(raw: str | None, name: str, context: dict[str, Any]) -> str | None:
    protocol = (raw or "").strip()
    if not protocol:
        return None
    try:
        return core_of(context["request"]).protocol_format.validate(protocol)
    except InvalidProtocolNumber as exc:
        raise bad_request(str(exc), field="protocol") from None


class AccessLogQuery(ListQuery):
    """``GET /api/v1/access-log``: the page, then the filters (the phone and document
    are normalised here and hashed by the handler)."""

    actor: Annotated[str | None, Reads(_actor, {"type": "string", "maxLength": ACTOR_MAX})] = None
    action: Annotated[str | None, Reads(_action, {"enum": list(ACTIONS)})] = None
    protocol: Annotated[
        str | None,
        Reads(
            _protocol,
            {"type": "string", "description": "Reads that showed this protocol."},
            with_context=True,
        ),
    ] = None
    from_: Annotated[datetime | None, QueryDatetime()] = None
    until: Annotated[datetime | None, QueryDatetime()] = None
    phone: PhoneQuery = Field(
        default=None, description="Searches for this phone (any Brazilian format)."
    )
    document: DocumentQuery = Field(default=None, description="Searches for this CPF/CNPJ.")


def parse_day(raw: str | None, name: str) -> date | None:
    if raw is None or raw == "":
        return None
    text = raw.strip()
    try:
        if len(text) != 10 or not text.isascii():
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{name} must be a date, YYYY-MM-DD", field=name) from None


DAY_SCHEMA: dict[str, Any] = {"type": "string", "format": "date"}


class PublicLookupsQuery(ListQuery):
    from_: Annotated[date | None, Reads(parse_day, DAY_SCHEMA)] = None
    until: Annotated[date | None, Reads(parse_day, DAY_SCHEMA)] = None
