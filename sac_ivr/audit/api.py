"""OpenAPI description of the audit routes (merged in http/openapi.py)."""

from sac_ivr.audit.services import ACTIONS, OUTCOMES
from sac_ivr.http.openapi import error_responses, list_params, page_body, ref

SCHEMAS = {
    "AccessLogEntry": {
        "type": "object",
        "required": ["id", "at", "actor", "role", "action", "endpoint", "rows", "protocols"],
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "actor": {"type": "string", "description": "The token's name."},
            "role": {"enum": ["agent", "supervisor", "admin"]},
            "action": {"enum": list(ACTIONS)},
            "endpoint": {"type": "string", "description": "e.g. GET /api/v1/protocols/{number}"},
            "client": {"type": ["string", "null"], "description": "The client's address."},
            "searched_by": {
                "type": "array",
                "items": {"enum": ["phone", "document"]},
                "description": "What the read searched for (the value itself is kept only as "
                "a keyed hash: filter with phone= or document=).",
            },
            "rows": {"type": "integer", "description": "Records the answer held."},
            "protocols": {"type": "array", "items": {"type": "string"}},
        },
    },
    "PublicLookupDay": {
        "type": "object",
        "required": ["day", *OUTCOMES],
        "properties": {
            "day": {"type": "string", "format": "date"},
            **{o: {"type": "integer"} for o in OUTCOMES},
        },
    },
}
PAGED = ["AccessLogEntry", "PublicLookupDay"]

PATHS = {
    "/api/v1/access-log": {
        "get": {
            "summary": "Who read customers' personal data, newest first (supervisor)",
            "description": "Every read of a protocol's record, a listing or search of "
            "protocols or calls, a customer's history and history requests (LGPD art. 37).",
            "parameters": [
                {"name": "actor", "in": "query", "schema": {"type": "string", "maxLength": 64}},
                {"name": "action", "in": "query", "schema": {"enum": list(ACTIONS)}},
                {
                    "name": "protocol",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Reads that showed this protocol.",
                },
                {
                    "name": "phone",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Searches for this phone (any Brazilian format).",
                },
                {
                    "name": "document",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Searches for this CPF/CNPJ.",
                },
                {
                    "name": "from",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                },
                {
                    "name": "until",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                },
                *list_params(),
            ],
            "security": [{"bearer": []}],
            "responses": {
                "200": page_body(ref("AccessLogEntryPage"), "A page (or CSV with format=csv)"),
                **error_responses(400, 401, 403),
            },
        }
    },
    "/api/v1/public-lookups": {
        "get": {
            "summary": "Public lookups per local day and outcome (supervisor)",
            "description": "found: the number alone; verified / verify_failed: with a second "
            "factor or signed link; not_found; invalid: a malformed number or factor; limited: "
            "refused by a rate limit (429).",
            "parameters": [
                {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}},
                {"name": "until", "in": "query", "schema": {"type": "string", "format": "date"}},
                *list_params(),
            ],
            "security": [{"bearer": []}],
            "responses": {
                "200": page_body(ref("PublicLookupDayPage"), "A page (or CSV with format=csv)"),
                **error_responses(400, 401, 403),
            },
        }
    },
}
