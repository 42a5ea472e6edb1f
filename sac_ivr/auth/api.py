"""OpenAPI description of the token admin routes (merged in http/openapi.py)."""

from sac_ivr.http.openapi import error_responses, json_body, list_params, page_body, ref

TOKEN_PROPERTIES = {
    "id": {"type": "integer"},
    "name": {
        "type": "string",
        "description": "Who holds it; the author of their changes. One active token per name.",
    },
    "role": {"enum": ["agent", "supervisor", "admin"]},
    "extension": {"type": ["string", "null"], "description": "Agent's interface, PJSIP/1001"},
    "created_at": {"type": "string", "format": "date-time"},
    "expires_at": {"type": ["string", "null"], "format": "date-time"},
    "revoked_at": {"type": ["string", "null"], "format": "date-time"},
    "active": {"type": "boolean", "description": "Neither revoked nor expired."},
    "live_sessions": {"type": "integer", "description": "Panel logins still open."},
}

SCHEMAS = {
    "Token": {
        "type": "object",
        "required": list(TOKEN_PROPERTIES),
        "properties": TOKEN_PROPERTIES,
    },
    "NewToken": {
        "allOf": [
            ref("Token"),
            {
                "type": "object",
                "required": ["token"],
                "properties": {
                    "token": {
                        "type": "string",
                        "description": "The token itself: shown this once, stored only as "
                        "its SHA-256.",
                    }
                },
            },
        ]
    },
}
PAGED = ["Token"]

PATHS = {
    "/api/v1/tokens": {
        "get": {
            "summary": "API tokens, newest first (admin)",
            "parameters": [
                {
                    "name": "all",
                    "in": "query",
                    "schema": {"type": "boolean", "default": False},
                    "description": "true: revoked and expired tokens too.",
                },
                *list_params(),
            ],
            "security": [{"bearer": []}],
            "responses": {
                "200": page_body(ref("TokenPage"), "A page (or CSV with format=csv)"),
                **error_responses(400, 401, 403),
            },
        },
        "post": {
            "summary": "Create a token (admin); the answer shows it once",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["name", "role"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string", "minLength": 1, "maxLength": 64},
                                "role": {"enum": ["agent", "supervisor", "admin"]},
                                "extension": {"type": ["string", "null"], "maxLength": 64},
                                "expires_at": {
                                    "type": ["string", "null"],
                                    "format": "date-time",
                                    "description": "With its offset; omitted: never expires.",
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": json_body(ref("NewToken"), "Created"),
                **error_responses(400, 401, 403, 409),
            },
        },
    },
    "/api/v1/tokens/{id}": {
        "delete": {
            "summary": "Revoke a token (admin): it and its panel sessions stop working at once",
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "security": [{"bearer": []}],
            "responses": {
                "200": json_body(ref("Token"), "Revoked (or already was)"),
                **error_responses(400, 401, 403, 404),
            },
        }
    },
}
