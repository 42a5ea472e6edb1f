"""OpenAPI description of the history-of-demands routes (merged in http/openapi.py)."""

from sac_ivr.http.inputs import MAX_INPUT
from sac_ivr.http.openapi import error_responses, id_param, json_body, list_params, page_body, ref

CUSTOMER_PARAMS = [
    {
        "name": "phone",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Any Brazilian format; matches the calling number and the phone "
        "given to an agent.",
    },
    {
        "name": "document",
        "in": "query",
        "schema": {"type": "string", "maxLength": MAX_INPUT},
        "description": "CPF/CNPJ",
    },
]
FORMAT_PARAM = {
    "name": "format",
    "in": "query",
    "schema": {"enum": ["json", "html"], "default": "json"},
    "description": "html: a printable pt-BR document (the browser prints it to PDF).",
}
ID_PARAM = id_param()

SCHEMAS = {
    "History": {
        "type": "object",
        "description": "Every request of the customer, newest first, with every change "
        "and reply the customer may read (internal notes left out).",
        "properties": {
            "company": {"type": "string"},
            "customer": {"type": "object"},
            "generated_at": {"type": "string", "format": "date-time"},
            "legal_basis": {"type": "string"},
            "total": {"type": "integer"},
            "protocols": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "number": {"type": "string"},
                        "opened_at": {"type": "string", "format": "date-time"},
                        "subject": {"type": ["string", "null"]},
                        "subject_label": {"type": ["string", "null"]},
                        "status": {"type": "string"},
                        "status_label": {"type": "string"},
                        "due_at": {"type": ["string", "null"]},
                        "resolved_at": {"type": ["string", "null"]},
                        "events": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "at": {"type": "string", "format": "date-time"},
                                    "kind": {"type": "string"},
                                    "description": {"type": "string"},
                                    "customer_note": {"type": ["string", "null"]},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "HistoryRequestBody": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "phone": {"type": "string"},
            "document": {"type": "string"},
            "delivery": {"enum": ["email", "mail", "in_person", "other"], "default": "email"},
            "email": {"type": "string", "format": "email"},
            "protocol": {
                "type": "string",
                "description": "The protocol of the contact in which the customer asked "
                "(the request goes on its timeline).",
            },
        },
        "description": "phone and/or document; email required for delivery=email (the "
        "document is then sent through the outbox and the request marked delivered when "
        "the SMTP server accepts it).",
    },
    "HistoryRequest": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "requested_at": {"type": "string", "format": "date-time"},
            "requested_by": {"type": "string"},
            "phone": {"type": ["string", "null"]},
            "document": {"type": ["string", "null"]},
            "delivery": {"type": "string"},
            "email": {"type": ["string", "null"]},
            "due_at": {
                "type": "string",
                "format": "date-time",
                "description": "From the legal profile: 5 calendar days (11.034), 72 h "
                "(6.523, ANS).",
            },
            "overdue": {"type": "boolean"},
            "delivered_at": {"type": ["string", "null"], "format": "date-time"},
            "delivered_via": {"type": ["string", "null"]},
            "delivered_by": {"type": ["string", "null"]},
        },
    },
}
PAGED = ["HistoryRequest"]

PATHS = {
    "/api/v1/history": {
        "get": {
            "summary": "A customer's history of demands (JSON or printable HTML)",
            "parameters": [*CUSTOMER_PARAMS, FORMAT_PARAM],
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "The history",
                    "content": {
                        "application/json": {"schema": ref("History")},
                        "text/html": {"schema": {"type": "string"}},
                    },
                },
                **error_responses(400, 401, 403),
            },
        }
    },
    "/api/v1/history-requests": {
        "post": {
            "summary": "Register a customer's request for their history (tracked to its deadline)",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("HistoryRequestBody")}},
            },
            "responses": {
                "201": json_body(ref("HistoryRequest"), "Registered"),
                **error_responses(400, 401, 403, 404),
            },
        },
        "get": {
            "summary": "History requests, soonest due first",
            "parameters": [
                {"name": "pending", "in": "query", "schema": {"type": "boolean"}},
                {"name": "overdue", "in": "query", "schema": {"type": "boolean"}},
                *list_params(),
            ],
            "security": [{"bearer": []}],
            "responses": {
                "200": page_body(ref("HistoryRequestPage"), "A page (or CSV with format=csv)"),
                **error_responses(400, 401, 403),
            },
        },
    },
    "/api/v1/history-requests/{id}": {
        "get": {
            "summary": "One history request",
            "parameters": [ID_PARAM],
            "security": [{"bearer": []}],
            "responses": {
                "200": json_body(ref("HistoryRequest"), "The request"),
                **error_responses(400, 401, 403, 404),
            },
        }
    },
    "/api/v1/history-requests/{id}/document": {
        "get": {
            "summary": "The history of the request's customer, as of now",
            "parameters": [ID_PARAM, FORMAT_PARAM],
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "The history",
                    "content": {
                        "application/json": {"schema": ref("History")},
                        "text/html": {"schema": {"type": "string"}},
                    },
                },
                **error_responses(400, 401, 403, 404),
                "410": json_body(ref("Error"), "The customer's data was anonymised"),
            },
        }
    },
    "/api/v1/history-requests/{id}/delivered": {
        "post": {
            "summary": "Record that the history reached the customer (mail, in person, ...)",
            "parameters": [ID_PARAM],
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["via"],
                            "properties": {
                                "via": {"enum": ["email", "mail", "in_person", "other"]}
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": json_body(ref("HistoryRequest"), "Delivered"),
                **error_responses(400, 401, 403, 404, 409),
            },
        }
    },
}
