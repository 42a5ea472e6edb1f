"""OpenAPI description of the service-level routes (health, the document itself)."""

from sac_ivr.http.openapi import json_body

PATHS = {
    "/healthz": {
        "get": {
            "summary": "Process and database health",
            "security": [{}],
            "responses": {
                "200": json_body({"type": "object"}, "Healthy"),
                "503": json_body({"type": "object"}, "The database does not answer"),
            },
        }
    },
    "/api/v1/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [{}],
            "responses": {"200": json_body({"type": "object"}, "OpenAPI 3.1")},
        }
    },
}
