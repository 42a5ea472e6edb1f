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
        "description": "A protocol looked up without a token: the status and the dates, to "
        "the day in the service's time zone. With a second factor (verified): also the "
        "subject and the notes written for the customer.",
        "required": ["number", "status", "status_label", "opened_on", "updated_on", "verified"],
        "properties": {
            "number": {"type": "string"},
            "status": {"type": "string"},
            "status_label": {"type": "string", "description": "pt-BR"},
            "opened_on": {"type": "string", "format": "date"},
            "updated_on": {"type": "string", "format": "date"},
            "due_on": {"type": ["string", "null"], "format": "date"},
            "verified": {"type": "boolean"},
            "subject": {"type": ["string", "null"], "description": "Verified only."},
            "subject_label": {"type": ["string", "null"], "description": "Verified only."},
            "notes": {
                "type": "array",
                "description": "Verified only: the notes written for the customer.",
                "items": {
                    "type": "object",
                    "properties": {
                        "on": {"type": "string", "format": "date"},
                        "status": {"type": ["string", "null"]},
                        "status_label": {"type": ["string", "null"]},
                        "note": {"type": "string"},
                    },
                },
            },
        },
    },
    "ProtocolAgent": {
        "allOf": [
            {
                "type": "object",
                "required": ["number", "status", "opened_at", "updated_at"],
                "properties": {
                    "number": {"type": "string"},
                    "status": {"type": "string"},
                    "opened_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "subject": {"type": ["string", "null"]},
                    "due_at": {"type": ["string", "null"], "format": "date-time"},
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
            "description": "Without a token: the status and the dates to the day (no "
            "subject, no personal data); the subject and the customer's notes with a second "
            "factor (verify) or a signed link (expires, signature). Limited per client "
            "address (public_lookups_per_hour; wrong second factors much more tightly) and "
            "counted. With an agent token: the full record, its timeline and its calls "
            "(ProtocolAgent), recorded in the access log.",
            "parameters": [
                NUMBER_PARAM,
                {
                    "name": "verify",
                    "in": "query",
                    "description": "Without a token: the last 4 digits of the customer's "
                    "phone or CPF/CNPJ.",
                    "schema": {"type": "string", "pattern": "^[0-9]{4}$"},
                },
                {
                    "name": "expires",
                    "in": "query",
                    "description": "Signed link: its expiry (Unix time).",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
                },
                {
                    "name": "signature",
                    "in": "query",
                    "description": "Signed link: its signature.",
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                },
            ],
            "security": [{}, {"bearer": []}],
            "responses": {
                "200": json_body(
                    {"oneOf": [ref("ProtocolPublic"), ref("ProtocolAgent")]}, "The protocol"
                ),
                **error_responses(400, 401, 404),
                "403": json_body(ref("Error"), "The second factor or link does not match"),
                "429": json_body(ref("Error"), "Too many lookups (Retry-After says when)"),
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
