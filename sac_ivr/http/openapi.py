"""The OpenAPI document, assembled from each feature's ``api.py``.

A test compares it with the routes the application really serves, so an endpoint
cannot be added without being documented.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from sac_ivr import __version__
from sac_ivr.http.errors import RETRY_AFTER_S
from sac_ivr.http.inputs import DATE_RANGE_TEXT, MAX_INT_DIGITS
from sac_ivr.http.listing import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET

# Features whose api.py contributes PATHS (and optionally SCHEMAS).
FEATURE_APIS = [
    "sac_ivr.http.health_api",
    "sac_ivr.protocols.api",
    "sac_ivr.panels.api",
    "sac_ivr.calls.api",
    "sac_ivr.lifecycle.api",
    "sac_ivr.notifications.api",
    "sac_ivr.history.api",
    "sac_ivr.reports.api",
    "sac_ivr.auth.api",
    "sac_ivr.audit.api",
]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR_TEXT = {
    400: "Invalid input (the message says which; error.details.field names it)",
    401: "Missing or unknown token",
    403: "The token's role may not do this; or a browser write from another origin",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "The body is larger than 256 KiB",
    415: "The body is not application/json",
    503: f"The database does not answer; Retry-After: {RETRY_AFTER_S} (seconds)",
}
# The largest id a path accepts (12 digits).
MAX_ID = 10**MAX_INT_DIGITS - 1
DATE_DESCRIPTION = f"Years {DATE_RANGE_TEXT}."


def error_responses(*statuses: int) -> dict[str, Any]:
    return {str(s): json_body(ref("Error"), ERROR_TEXT[s]) for s in statuses}


def list_params(max_limit: int = MAX_LIMIT) -> list[dict[str, Any]]:
    """``limit``, ``offset``, ``format``: the limits :func:`listing.parse_page` enforces."""
    return [
        {
            "name": "limit",
            "in": "query",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": max_limit,
                "default": DEFAULT_LIMIT,
            },
        },
        {
            "name": "offset",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        },
        {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"], "default": "json"}},
    ]


def id_param(name: str = "id") -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
    }


def page_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A listing's answer: a JSON page, or the same rows as CSV with format=csv."""
    return {
        "description": description,
        "content": {
            "application/json": {"schema": schema},
            "text/csv": {"schema": {"type": "string"}},
        },
    }


def page_schema(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "total", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": ref(item)},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    }


def _common_responses(path: str, operation: dict[str, Any]) -> None:
    """The answers every route may give besides its own: 400 for input no route
    accepts (a NUL in the query, a non-ASCII Authorization header, ...); for routes
    that read the database, 503; for routes with a JSON body, 413 and 415."""
    responses = operation.setdefault("responses", {})
    wanted = [400]
    if (path.startswith("/api/v1/") and path != "/api/v1/openapi.json") or path == "/reports":
        wanted.append(503)
    if "requestBody" in operation:
        wanted += [413, 415]
    for status in wanted:
        if str(status) not in responses:
            responses[str(status)] = json_body(ref("Error"), ERROR_TEXT[status])
    if "503" in responses and "headers" not in responses["503"]:
        responses["503"]["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}
        }


def build_openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "details": {"type": "object"},
                    },
                }
            },
        }
    }
    for module_name in FEATURE_APIS:
        module = import_module(module_name)
        for path, operations in module.PATHS.items():
            paths.setdefault(path, {}).update(operations)
        schemas.update(getattr(module, "SCHEMAS", {}))
        for item in getattr(module, "PAGED", ()):
            schemas[f"{item}Page"] = page_schema(item)
    schemas.setdefault("ProtocolPage", page_schema("ProtocolAgent"))
    for path, operations in paths.items():
        for operation in operations.values():
            _common_responses(path, operation)
    return {
        "openapi": "3.1.0",
        "info": {"title": "sac-ivr", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
