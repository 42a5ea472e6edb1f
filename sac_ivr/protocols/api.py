"""OpenAPI description of the protocols feature's routes (merged in http/openapi.py)."""

from sac_ivr.http.inputs import MAX_INPUT
from sac_ivr.http.openapi import error_responses, json_body, list_params, page_body, ref
from sac_ivr.protocols.schemas import DUE_WITHIN_DAYS_MAX, STATUS_MAX

NUMBER_PARAM = {
    "name": "number",
    "in": "path",
    "required": True,
    "description": "Protocol number: digits only; the default format's last digit is a "
    "Damm check digit and is verified before any lookup.",
    "schema": {"type": "string", "pattern": "^[0-9]{1,64}$"},
}

SCHEMAS = {
    "ProtocolPublic": {
        "type": "object",
        "required": ["number", "status", "opened_at", "updated_at"],
        "properties": {
            "number": {"type": "string"},
            "status": {"type": "string"},
            "opened_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "subject": {"type": ["string", "null"]},
            "due_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "ProtocolAgent": {
        "allOf": [
            ref("ProtocolPublic"),
            {
                "type": "object",
                "properties": {
                    "caller_number": {"type": ["string", "null"]},
                    "caller_e164": {"type": ["string", "null"]},
                    "customer_document": {"type": ["string", "null"]},
                    "events": {"type": "array", "items": {"type": "object"}},
                },
            },
        ]
    },
}

PATHS = {
    "/api/v1/protocols/{number}": {
        "get": {
            "summary": "Look a protocol up",
            "description": "Without a token: status only, no personal data. With an agent "
            "token: the full record, its timeline and its calls.",
            "parameters": [NUMBER_PARAM],
            "security": [{}, {"bearer": []}],
            "responses": {
                "200": json_body(ref("ProtocolPublic"), "The protocol"),
                **error_responses(400, 401, 404),
            },
        }
    },
    "/api/v1/protocols": {
        "get": {
            "summary": "A customer's protocols, newest first",
            "parameters": [
                {
                    "name": "phone",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Any Brazilian format; compared in E.164.",
                },
                {
                    "name": "document",
                    "in": "query",
                    "schema": {"type": "string", "maxLength": MAX_INPUT},
                    "description": "CPF or CNPJ, check digits verified.",
                },
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "pattern": f"^[a-z_]{{1,{STATUS_MAX}}}$"},
                },
                {
                    "name": "overdue",
                    "in": "query",
                    "schema": {"type": "boolean"},
                    "description": "true: only requests not yet answered whose due date passed.",
                },
                {
                    "name": "due_within_days",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "maximum": DUE_WITHIN_DAYS_MAX},
                    "description": "Only requests not yet answered, due from now to N days "
                    "ahead. Not with overdue=true.",
                },
                *list_params(),
            ],
            "security": [{"bearer": []}],
            "responses": {
                "200": page_body(ref("ProtocolPage"), "A page (or CSV with format=csv)"),
                **error_responses(400, 401, 403),
            },
        }
    },
}
