"""OpenAPI description of the lifecycle routes (merged in http/openapi.py)."""

from sac_ivr.http.openapi import error_responses, json_body, ref

NULLABLE_STRING = {"type": ["string", "null"]}

NUMBER_PARAM = {
    "name": "number",
    "in": "path",
    "required": True,
    "description": "Protocol number: digits only; the default format's last digit is a "
    "Damm check digit and is verified before any lookup.",
    "schema": {"type": "string", "pattern": "^[0-9]{1,64}$"},
}

SCHEMAS = {
    "ProtocolChanges": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "description": "Any of these fields; null clears one. Unknown fields are refused.",
        "properties": {
            "subject": {
                **NULLABLE_STRING,
                "description": "A configured subject code (GET /api/v1/lifecycle). Changing "
                "it recomputes the due date (e.g. ANS high complexity); 'cancellation' "
                "registers the cancellation as effective now and sends the receipt.",
            },
            "customer_document": {**NULLABLE_STRING, "description": "CPF or CNPJ, verified."},
            "customer_name": {**NULLABLE_STRING, "maxLength": 128},
            "customer_email": {**NULLABLE_STRING, "format": "email"},
            "customer_phone": {
                **NULLABLE_STRING,
                "description": "Any Brazilian format; stored in E.164. SMS go to it.",
            },
            "notes": {**NULLABLE_STRING, "maxLength": 10000},
            "department": {**NULLABLE_STRING, "description": "A configured department code."},
            "agent": {**NULLABLE_STRING, "maxLength": 64},
        },
    },
    "Transition": {
        "type": "object",
        "additionalProperties": False,
        "required": ["to_status"],
        "properties": {
            "to_status": {
                "enum": [
                    "open",
                    "forwarded",
                    "in_progress",
                    "waiting_customer",
                    "resolved",
                    "closed",
                    "cancelled",
                ]
            },
            "department": {
                **NULLABLE_STRING,
                "description": "Required when to_status is forwarded.",
            },
            "customer_note": {
                **NULLABLE_STRING,
                "maxLength": 4000,
                "description": "Told to the customer (SMS, e-mail, history of demands).",
            },
            "internal_note": {**NULLABLE_STRING, "maxLength": 4000, "description": "Agents only."},
        },
    },
    "Lifecycle": {
        "type": "object",
        "required": ["statuses", "transitions", "subjects", "departments", "profile"],
        "properties": {
            "statuses": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "label_pt", "final"],
                    "properties": {
                        "code": {"type": "string"},
                        "label_pt": {"type": "string"},
                        "final": {"type": "boolean"},
                    },
                },
            },
            "transitions": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
            "subjects": {"type": "array", "items": ref("Choice")},
            "departments": {"type": "array", "items": ref("Choice")},
            "profile": {
                "type": "object",
                "description": "The legal profile: code, title, reply/history deadlines "
                "(7d calendar days, 5bd business days, 72h hours), extended_reply and "
                "extended_subjects, answered_statuses (the clock stops there), holidays.",
            },
        },
    },
    "Choice": {
        "type": "object",
        "required": ["code", "label_pt"],
        "properties": {"code": {"type": "string"}, "label_pt": {"type": "string"}},
    },
}

PATHS = {
    "/api/v1/protocols/{number}": {
        "patch": {
            "summary": "Change a protocol's fields",
            "description": "Each changed field becomes a timeline event (actor: the token's "
            "name; personal data recorded without its value).",
            "parameters": [NUMBER_PARAM],
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("ProtocolChanges")}},
            },
            "responses": {
                "200": json_body(ref("ProtocolAgent"), "The agent view with its events"),
                **error_responses(400, 401, 403, 404),
            },
        }
    },
    "/api/v1/protocols/{number}/transitions": {
        "post": {
            "summary": "Move a protocol to another status",
            "description": "Allowed moves: GET /api/v1/lifecycle. Recorded on the timeline "
            "and sent to the customer by SMS and e-mail (outbox) in the same transaction.",
            "parameters": [NUMBER_PARAM],
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("Transition")}},
            },
            "responses": {
                "200": json_body(ref("ProtocolAgent"), "The agent view with its events"),
                **error_responses(400, 401, 403, 404),
                "409": json_body(
                    ref("Error"),
                    "Not allowed from the current status; error.details.allowed lists "
                    "the statuses it may move to",
                ),
            },
        }
    },
    "/api/v1/lifecycle": {
        "get": {
            "summary": "Statuses, transitions, subjects, departments, legal profile",
            "security": [{"bearer": []}],
            "responses": {
                "200": json_body(ref("Lifecycle"), "What the agent panel builds forms from"),
                **error_responses(401, 403),
            },
        }
    },
}
