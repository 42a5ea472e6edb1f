"""OpenAPI description of the calls feature (merged in http/openapi.py).

Besides ``GET /api/v1/calls``, this feature adds the ``calls`` member (schema
``ProtocolCalls``) to the agent view of ``GET /api/v1/protocols/{number}``: the calls
the protocol was issued on, or whose caller's leg carried its number.
"""

from sac_ivr.calls.schemas import MAX_PARAM, OUTCOMES, PROTOCOL_MAX
from sac_ivr.http.openapi import DATE_DESCRIPTION, error_responses, list_params, page_body, ref

NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_NUM = {"type": ["number", "null"]}

SCHEMAS = {
    "Call": {
        "type": "object",
        "description": "One call (all its legs share the linkedid), built from AMI events.",
        "required": ["linkedid", "started_at", "outcome", "transfers", "reconciled"],
        "properties": {
            "linkedid": {"type": "string"},
            "protocol": {**NULLABLE_STR, "description": "Protocol number given on this call"},
            "caller_number": {**NULLABLE_STR, "description": "Caller ID as Asterisk gave it"},
            "caller_e164": NULLABLE_STR,
            "caller_masked": NULLABLE_STR,
            "caller_name": NULLABLE_STR,
            "called_number": {**NULLABLE_STR, "description": "The number dialled (DNID)"},
            "channel": {**NULLABLE_STR, "description": "The caller's leg"},
            "started_at": {"type": "string", "format": "date-time"},
            "line_answered_at": {**NULLABLE_TIME, "description": "When Asterisk answered"},
            "queue": NULLABLE_STR,
            "queue_entered_at": NULLABLE_TIME,
            "queue_left_at": NULLABLE_TIME,
            "wait_s": {**NULLABLE_NUM, "description": "Queue entry to agent (or leaving)"},
            "answered_at": {**NULLABLE_TIME, "description": "When an agent answered"},
            "agent_interface": NULLABLE_STR,
            "agent_name": NULLABLE_STR,
            "talk_s": NULLABLE_NUM,
            "transfers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "at": {"type": "string", "format": "date-time"},
                        "kind": {"enum": ["blind", "attended"]},
                        "by": NULLABLE_STR,
                        "to": NULLABLE_STR,
                        "result": NULLABLE_STR,
                    },
                },
            },
            "ended_at": NULLABLE_TIME,
            "duration_s": NULLABLE_NUM,
            "hangup_cause": {"type": ["integer", "null"], "description": "Q.850 cause code"},
            "hangup_cause_text": NULLABLE_STR,
            "recording_file": {**NULLABLE_STR, "description": "MixMonitor's file, if recorded"},
            "outcome": {
                "enum": ["in_progress", "answered", "abandoned", "ivr"],
                "description": "abandoned: queued and left without an agent; ivr: never queued",
            },
            "reconciled": {
                "type": "boolean",
                "description": "Closed by reconciliation: its hangup was not seen over AMI "
                "(link down); ended_at is then the best bound known",
            },
        },
    },
    "ProtocolCalls": {
        "type": "array",
        "description": "The ``calls`` member of a protocol's agent view (GET "
        "/api/v1/protocols/{number} with an agent token), oldest first.",
        "items": ref("Call"),
    },
}

PAGED = ["Call"]

PATHS = {
    "/api/v1/calls": {
        "get": {
            "summary": "The call log, newest first (JSON page or CSV)",
            "parameters": [
                {
                    "name": "from",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                    "description": "Calls started at or after (ISO 8601; a date alone is "
                    "midnight UTC; a time without offset is UTC). " + DATE_DESCRIPTION,
                },
                {
                    "name": "until",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                    "description": "Calls started before (later than from). " + DATE_DESCRIPTION,
                },
                {
                    "name": "phone",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "Caller's number in any Brazilian format; compared in E.164.",
                },
                {
                    "name": "protocol",
                    "in": "query",
                    "schema": {"type": "string", "pattern": f"^[0-9]{{1,{PROTOCOL_MAX}}}$"},
                },
                {
                    "name": "agent",
                    "in": "query",
                    "schema": {"type": "string", "maxLength": MAX_PARAM},
                    "description": "Queue member name or interface of the answering agent.",
                },
                {
                    "name": "outcome",
                    "in": "query",
                    "schema": {"enum": list(OUTCOMES)},
                },
                *list_params(),
            ],
            "security": [{"bearer": []}],
            "responses": {
                "200": page_body(ref("CallPage"), "A page (or CSV with format=csv)"),
                **error_responses(400, 401, 403),
            },
        }
    },
}
