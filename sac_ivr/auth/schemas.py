"""Tokens over HTTP: the view an admin lists, and the body that creates one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sac_ivr.auth.services import ROLES, is_active
from sac_ivr.auth.tables import ApiToken
from sac_ivr.http.errors import bad_request
from sac_ivr.http.listing import iso

TOKEN_FIELDS = ("name", "role", "extension", "expires_at")
DATETIME_MAX = 40


def token_view(row: ApiToken, live_sessions: int = 0) -> dict[str, Any]:
    """Everything about a token but the token (which nobody can see again)."""
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "extension": row.extension,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "revoked_at": iso(row.revoked_at),
        "active": is_active(row),
        "live_sessions": live_sessions,
    }


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


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"{name} is required", field=name)
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string", field=name)
    return value


def parse_token_body(body: dict[str, Any]) -> dict[str, Any]:
    """``{name, role, extension?, expires_at?}`` of ``POST /api/v1/tokens``."""
    unknown = sorted(set(body) - set(TOKEN_FIELDS))
    if unknown:
        raise bad_request(
            f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(TOKEN_FIELDS)}",
            field=unknown[0],
        )
    name = _string(body, "name", required=True)
    role = _string(body, "role", required=True)
    if role not in ROLES:
        raise bad_request(f"role must be one of {', '.join(ROLES)}", field="role")
    expires_raw = _string(body, "expires_at")
    expires_at = None
    if expires_raw is not None:
        expires_at = parse_expiry(expires_raw)
    return {
        "name": name,
        "role": role,
        "extension": _string(body, "extension"),
        "expires_at": expires_at,
    }


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
