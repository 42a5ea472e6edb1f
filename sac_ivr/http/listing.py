"""One shape for every listing endpoint: filters, ``limit``/``offset`` paging,
``{items, total, limit, offset}`` in JSON, and the same rows as CSV with
``format=csv``."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from sac_ivr.http.errors import bad_request

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int
    format: str  # "json" or "csv"


def iso(value: datetime | None) -> str | None:
    """A datetime as ISO 8601 text for JSON (None stays None)."""
    return value.isoformat() if value is not None else None


def parse_page(request: web.Request, max_limit: int = MAX_LIMIT) -> Page:
    query = request.query
    limit = parse_int(query.get("limit"), "limit", DEFAULT_LIMIT, 1, max_limit)
    offset = parse_int(query.get("offset"), "offset", 0, 0, 10**9)
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise bad_request("format must be json or csv", field="format")
    return Page(limit=limit, offset=offset, format=fmt)


def parse_int(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 12:
        raise bad_request(f"{name} must be a whole number", field=name)
    value = int(raw)
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}", field=name)
    return value


def parse_datetime(raw: str | None, name: str) -> datetime | None:
    """ISO 8601; a date alone means its midnight UTC; naive times are taken as UTC."""
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be an ISO 8601 date or date-time", field=name) from None
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value


def listing_response(
    page: Page,
    items: Sequence[dict[str, Any]],
    total: int,
    csv_columns: Sequence[str],
    filename: str = "export.csv",
) -> web.Response:
    if page.format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(csv_columns), extrasaction="ignore")
        writer.writeheader()
        for item in items:
            writer.writerow({k: _csv_value(item.get(k)) for k in csv_columns})
        return web.Response(
            text=buffer.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return web.json_response(
        {"items": list(items), "total": total, "limit": page.limit, "offset": page.offset}
    )


def _csv_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value
