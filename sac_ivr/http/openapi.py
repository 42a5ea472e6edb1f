"""The OpenAPI document, assembled from each feature's ``api.py``.

A test compares it with the routes the application really serves, so an endpoint
cannot be added without being documented.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from sac_ivr import __version__

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
    400: "Invalid input (the message says which)",
    401: "Missing or unknown token",
    403: "The token's role may not do this",
    404: "Not found",
    409: "Conflicts with the current state",
}


def error_responses(*statuses: int) -> dict[str, Any]:
    return {str(s): json_body(ref("Error"), ERROR_TEXT[s]) for s in statuses}


def list_params() -> list[dict[str, Any]]:
    return [
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
        },
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}},
    ]


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
    return {
        "openapi": "3.1.0",
        "info": {"title": "sac-ivr", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
