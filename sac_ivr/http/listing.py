"""One shape for every listing endpoint: filters, ``limit``/``offset`` paging,
``{items, total, limit, offset}`` in JSON, and the same rows as CSV with
``format=csv``. The page is read by ``endpoints.ListQuery`` and written here."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from sac_ivr.http.inputs import parse_datetime as parse_datetime  # moved; kept importable

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_OFFSET = 10**9
FORMATS = ("json", "csv")
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"); such cells are written with a leading apostrophe.
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int
    format: str  # "json" or "csv"


def iso(value: datetime | None) -> str | None:
    """A datetime as ISO 8601 text for JSON (None stays None)."""
    return value.isoformat() if value is not None else None


def listing_response(
    page: Page,
    items: Sequence[dict[str, Any]],
    total: int,
    csv_columns: Sequence[str],
    filename: str = "export.csv",
) -> web.Response:
    if page.format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(csv_columns))  # rows hold only them
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
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return csv_safe(value)
    return "" if value is None else value


def csv_safe(text: str) -> str:
    """A text cell that no spreadsheet will run as a formula: one that starts with
    ``= + - @``, a tab or a carriage return gets a leading apostrophe (OWASP)."""
    return "'" + text if text.startswith(CSV_FORMULA_START) else text
