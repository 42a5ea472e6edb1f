"""OpenAPI description of the notifications routes (merged in http/openapi.py)."""

from typing import Any

from sac_ivr.http.openapi import error_responses, id_param, json_body, list_params, page_body, ref

SCHEMAS: dict[str, Any] = {
    "Notification": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "protocol": {"type": ["string", "null"]},
            "kind": {
                "type": "string",
                "description": "opened, status, cancellation, sms_request, history",
            },
            "channel": {"enum": ["sms", "email"]},
            "to": {"type": "string", "description": "Masked recipient"},
            "status": {"enum": ["pending", "sending", "sent", "failed"]},
            "attempts": {"type": "integer"},
            "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
            "last_error": {"type": ["string", "null"]},
            "message_key": {
                "type": "string",
                "description": "Stable across attempts: e-mail Message-ID, SMS idempotency key",
            },
            "provider_id": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "sent_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }
}
PAGED = ["Notification"]

PATHS = {
    "/api/v1/notifications": {
        "get": {
            "summary": "The notification outbox, newest first",
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "schema": {
                        "enum": list(SCHEMAS["Notification"]["properties"]["status"]["enum"])
                    },
                },
                {"name": "channel", "in": "query", "schema": {"enum": ["sms", "email"]}},
                *list_params(),
            ],
            "security": [{"bearer": []}],
            "responses": {
                "200": page_body(ref("NotificationPage"), "A page (or CSV with format=csv)"),
                **error_responses(400, 401, 403),
            },
        }
    },
    "/api/v1/notifications/{id}/retry": {
        "post": {
            "summary": "Send a failed notification again (a fresh series of attempts)",
            "parameters": [id_param()],
            "security": [{"bearer": []}],
            "responses": {
                "200": json_body(ref("Notification"), "Queued again"),
                **error_responses(400, 401, 403, 404, 409),
            },
        }
    },
}
