"""OpenAPI description of the panels' routes (merged in http/openapi.py).

The HTML pages and their static files are listed too (``text/html`` etc., no
token needed: the page asks for one), so the served routes and this document
match one to one.
"""

from sac_ivr.http.openapi import error_responses, json_body, ref

SCHEMAS = {
    "Viewer": {
        "type": "object",
        "required": ["name", "role", "extension"],
        "properties": {
            "name": {"type": "string"},
            "role": {"enum": ["agent", "supervisor", "admin"]},
            "extension": {
                "type": ["string", "null"],
                "description": "The agent's queue interface, e.g. PJSIP/1001.",
            },
        },
    },
    "LiveCall": {
        "type": "object",
        "required": ["linkedid", "state", "mine"],
        "properties": {
            "linkedid": {"type": "string"},
            "protocol": {"type": ["string", "null"]},
            "caller": {
                "type": ["string", "null"],
                "description": "E.164 (or as received); only the last 4 digits for agents "
                "looking at other callers in the queue (panels_mask_queue_callers).",
            },
            "caller_masked": {"type": "boolean"},
            "caller_e164": {"type": ["string", "null"]},
            "queue": {"type": ["string", "null"]},
            "state": {"enum": ["ivr", "queued", "ringing", "connected"]},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "entered_queue_at": {"type": ["string", "null"], "format": "date-time"},
            "answered_at": {"type": ["string", "null"], "format": "date-time"},
            "agent": {"type": ["string", "null"]},
            "agent_name": {"type": ["string", "null"]},
            "mine": {
                "type": "boolean",
                "description": "Ringing on (ring-all queues: among the phones rung) or answered "
                "at the viewer's own extension.",
            },
            "channel": {"type": ["string", "null"], "description": "Supervisor view only."},
            "ringing": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Supervisor view only: the interfaces being rung now.",
            },
        },
    },
    "LiveQueue": {
        "type": "object",
        "required": ["name", "waiting", "oldest_entered_at", "agents"],
        "properties": {
            "name": {"type": "string"},
            "waiting": {"type": "integer"},
            "oldest_entered_at": {"type": ["string", "null"], "format": "date-time"},
            "agents": {
                "type": "object",
                "description": "Members per status.",
                "properties": {
                    s: {"type": "integer"} for s in ("available", "busy", "paused", "unavailable")
                },
            },
            "members": {
                "type": "array",
                "description": "Supervisors only.",
                "items": {
                    "type": "object",
                    "properties": {
                        "interface": {"type": ["string", "null"]},
                        "name": {"type": ["string", "null"]},
                        "status": {"enum": ["available", "busy", "paused", "unavailable"]},
                        "paused_reason": {"type": ["string", "null"]},
                        "calls_taken": {"type": ["integer", "null"]},
                    },
                },
            },
            "me": {
                "type": ["string", "null"],
                "description": "Agents only: their own member status in this queue.",
            },
        },
    },
    "LiveSnapshot": {
        "type": "object",
        "required": [
            "server_time",
            "view",
            "ami",
            "ami_connected",
            "max_wait_s",
            "heartbeat_s",
            "viewer",
            "calls",
            "queues",
        ],
        "properties": {
            "server_time": {"type": "string", "format": "date-time"},
            "view": {"enum": ["agent", "supervisor"]},
            "ami": {
                "type": "boolean",
                "description": "False when no call tracker runs (AMI disabled): "
                "the lists are then always empty.",
            },
            "ami_connected": {
                "type": "boolean",
                "description": "The tracker's AMI link is up (false: the state may be stale).",
            },
            "max_wait_s": {
                "type": "integer",
                "description": "Longest acceptable wait (setting panels_max_wait_s; "
                "Portaria MJ 2.014/2008: 60 s, 45 s for financial core).",
            },
            "heartbeat_s": {
                "type": "number",
                "description": "Seconds between heartbeats when idle (panels_heartbeat_s).",
            },
            "viewer": ref("Viewer"),
            "calls": {"type": "array", "items": ref("LiveCall")},
            "queues": {"type": "array", "items": ref("LiveQueue")},
        },
    },
}

VIEW_PARAM = {
    "name": "view",
    "in": "query",
    "description": "agent (default): calls ringing or connected on the viewer's extension and "
    "the calls waiting in their queues, other callers masked. supervisor: every call, queue "
    "and agent; needs the supervisor role (403 otherwise).",
    "schema": {"enum": ["agent", "supervisor"], "default": "agent"},
}

HTML_PAGE = {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}

PATHS = {
    "/agent": {
        "get": {
            "summary": "Agent panel (HTML)",
            "description": "Live calls on the agent's extension and the queue; asks for a "
            "token when the browser has no session.",
            "security": [{}],
            "responses": {"200": HTML_PAGE},
        }
    },
    "/agent/calls/{protocol}": {
        "get": {
            "summary": "Agent panel opened on one protocol (screen pop, X-SAC-URL)",
            "parameters": [
                {"name": "protocol", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "security": [{}],
            "responses": {"200": HTML_PAGE},
        }
    },
    "/supervisor": {
        "get": {
            "summary": "Supervisor view (HTML)",
            "description": "Queues, waiting calls against the legal limit, agents.",
            "security": [{}],
            "responses": {"200": HTML_PAGE},
        }
    },
    "/panels/static/{name}": {
        "get": {
            "summary": "The panels' scripts, styles and images",
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "security": [{}],
            "responses": {
                "200": {"description": "The file (text/javascript, text/css, ...)"},
                **error_responses(404),
            },
        }
    },
    "/api/v1/session": {
        "post": {
            "summary": "Log a browser in",
            "description": "Checks the token and opens a server-side session: its random "
            "id (never the token) goes in the HttpOnly, SameSite=Strict cookie sac_session, "
            "which every endpoint accepts in place of the header. The session ends after "
            "panels_session_hours, at logout, or when the token is revoked or expires.",
            "security": [{}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["token"],
                            "properties": {"token": {"type": "string"}},
                        }
                    }
                },
            },
            "responses": {
                "200": json_body(ref("Viewer"), "Logged in; Set-Cookie: sac_session"),
                **error_responses(400, 401),
                "415": json_body(ref("Error"), "The body is not application/json"),
            },
        },
        "get": {
            "summary": "Who is logged in",
            "security": [{"bearer": []}],
            "responses": {"200": json_body(ref("Viewer"), "The viewer"), **error_responses(401)},
        },
        "delete": {
            "summary": "Log out: the session ends on the server and the cookie is cleared",
            "security": [{}],
            "responses": {"204": {"description": "Logged out"}},
        },
    },
    "/api/v1/live/snapshot": {
        "get": {
            "summary": "Calls and queues now, as the viewer may see them",
            "parameters": [VIEW_PARAM],
            "security": [{"bearer": []}],
            "responses": {
                "200": json_body(ref("LiveSnapshot"), "The state"),
                **error_responses(400, 401, 403),
            },
        }
    },
    "/api/v1/live/events": {
        "get": {
            "summary": "Live calls and queues (Server-Sent Events)",
            "description": "Event `snapshot` (a LiveSnapshot) first, then `call` "
            "(`{server_time, call: LiveCall}`), `call_removed` (`{server_time, linkedid}`), "
            "`queue` (`{server_time, queue: LiveQueue}`), `queue_removed` "
            "(`{server_time, name}`), `link` (`{server_time, ami_connected}`: the AMI link "
            "went down or up), and `heartbeat` (`{server_time}`) every "
            "panels_heartbeat_s seconds when nothing happens. A reconnecting client gets "
            "a new snapshot. Browsers authenticate with the sac_session cookie; the stream "
            "ends within a heartbeat of a logout or of the token's revocation. At most "
            "panels_max_streams_per_token streams per token (429 with Retry-After beyond).",
            "parameters": [VIEW_PARAM],
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "The event stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **error_responses(400, 401, 403),
                "429": json_body(ref("Error"), "Too many streams open for this token"),
            },
        }
    },
}
