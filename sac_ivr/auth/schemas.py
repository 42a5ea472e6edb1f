"""Tokens over HTTP: the view an admin lists, and the body that creates one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from sac_ivr.auth.services import ROLES, is_active
from sac_ivr.auth.tables import ApiToken
from sac_ivr.http.endpoints import (
    BodyModel,
    CsvExport,
    ListQuery,
    PageOf,
    RequestModel,
    ResponseModel,
)
from sac_ivr.http.errors import bad_request
from sac_ivr.http.fields import MAX_ID, QueryBool, Reads, Timestamp

DATETIME_MAX = 40


def token_view(row: ApiToken, live_sessions: int = 0) -> dict[str, Any]:
    """Everything about a token but the token (which nobody can see again), as JSON
    values (the CLI's listing)."""
    return token_model(row, live_sessions).model_dump(mode="json")


LIST_COLUMNS = (
    "id",
    "name",
    "role",
    "extension",
    "created_at",
    "expires_at",
    "revoked_at",
    "active",
    "live_sessions",
)


def parse_expiry(raw: str) -> datetime:
    """An ISO 8601 date-time with its offset (``2027-01-31T18:00:00-03:00``, ``…Z``)."""
    text = raw.strip()
    if len(text) > DATETIME_MAX or not text.isascii():
        raise bad_request("expires_at must be an ISO 8601 date-time", field="expires_at")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise bad_request("expires_at must be an ISO 8601 date-time", field="expires_at") from None
    if value.tzinfo is None:
        raise bad_request(
            "expires_at needs its offset, e.g. 2027-01-31T18:00:00-03:00", field="expires_at"
        )
    if value.year < 2000 or value.year > 9000:
        raise bad_request("expires_at is out of range", field="expires_at")
    return value


# ------------------------------------------------------------------ declared shapes


class Token(ResponseModel):
    id: int
    name: str = Field(
        description="Who holds it; the author of their changes. One active token per name."
    )
    role: Literal["agent", "supervisor", "admin"]
    extension: str | None = Field(description="Agent's interface, PJSIP/1001")
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    active: bool = Field(description="Neither revoked nor expired.")
    live_sessions: int = Field(description="Panel logins still open.")


class NewToken(Token):
    token: str = Field(description="The token itself: shown this once, stored only as its SHA-256.")


class TokenPage(PageOf[Token]):
    pass


def token_model(row: ApiToken, live_sessions: int = 0) -> Token:
    return Token(
        id=row.id,
        name=row.name,
        role=row.role,  # type: ignore[arg-type]  # the column holds ROLES only
        extension=row.extension,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        active=is_active(row),
        live_sessions=live_sessions,
    )


TOKENS_CSV = CsvExport(columns=LIST_COLUMNS, filename="tokens.csv")


class TokenQuery(ListQuery):
    all: Annotated[bool, QueryBool()] = Field(
        default=False, description="true: revoked and expired tokens too."
    )


def _required_string(value: Any, name: str) -> str:
    if value is None:
        raise bad_request(f"{name} is required", field=name)
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string", field=name)
    return value


def _role(value: Any, name: str) -> str:
    role = _required_string(value, name)
    if role not in ROLES:
        raise bad_request(f"role must be one of {', '.join(ROLES)}", field="role")
    return role


def _optional_string(value: Any, name: str) -> str | None:
    return None if value is None else _required_string(value, name)


def _expiry(value: Any, name: str) -> datetime | None:
    raw = _optional_string(value, name)
    return parse_expiry(raw) if raw is not None else None


class TokenBody(BodyModel):
    """``{name, role, extension?, expires_at?}`` of ``POST /api/v1/tokens``."""

    REQUIRED = ("name", "role")

    name: Annotated[
        str, Reads(_required_string, {"type": "string", "minLength": 1, "maxLength": 64}, json=True)
    ] = Field(default=None, validate_default=True)
    role: Annotated[str, Reads(_role, {"enum": list(ROLES)}, json=True)] = Field(
        default=None, validate_default=True
    )
    extension: Annotated[
        str | None,
        Reads(_optional_string, {"type": ["string", "null"], "maxLength": 64}, json=True),
    ] = None
    expires_at: Annotated[
        datetime | None,
        Reads(
            _expiry,
            {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "With its offset; omitted: never expires.",
            },
            json=True,
        ),
    ] = None


def _token_id(raw: str | None, name: str) -> int:
    raw = raw or ""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise bad_request("the token id is a whole number", field="id")
    return int(raw)


class TokenPath(RequestModel):
    id: Annotated[int, Reads(_token_id, {"type": "integer", "minimum": 0, "maximum": MAX_ID})]
