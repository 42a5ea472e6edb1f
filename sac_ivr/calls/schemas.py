"""How calls look over HTTP, and how the listing's query parameters are read."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sac_ivr.calls.models import CallLog
from sac_ivr.calls.services import CallFilter
from sac_ivr.http.errors import bad_request
from sac_ivr.http.inputs import phone_param
from sac_ivr.http.listing import iso, parse_datetime
from sac_ivr.phones import mask_phone

OUTCOMES = ("in_progress", "answered", "abandoned", "ivr")
MAX_PARAM = 128


def call_view(c: CallLog) -> dict[str, Any]:
    return {
        "linkedid": c.linkedid,
        "protocol": c.protocol_number,
        "caller_number": c.caller_number,
        "caller_e164": c.caller_e164,
        "caller_masked": mask_phone(c.caller_e164 or c.caller_number),
        "caller_name": c.caller_name,
        "called_number": c.called_number,
        "channel": c.channel,
        "started_at": iso(c.started_at),
        "line_answered_at": iso(c.line_answered_at),
        "queue": c.queue,
        "queue_entered_at": iso(c.queue_entered_at),
        "queue_left_at": iso(c.queue_left_at),
        "wait_s": c.wait_s,
        "answered_at": iso(c.answered_at),
        "agent_interface": c.agent_interface,
        "agent_name": c.agent_name,
        "talk_s": c.talk_s,
        "transfers": list(c.transfers or []),
        "ended_at": iso(c.ended_at),
        "duration_s": c.duration_s,
        "hangup_cause": c.hangup_cause,
        "hangup_cause_text": c.hangup_cause_text,
        "recording_file": c.recording_file,
        "outcome": c.outcome,
        "reconciled": c.reconciled,
    }


LIST_COLUMNS = (
    "linkedid",
    "protocol",
    "caller_e164",
    "caller_number",
    "called_number",
    "started_at",
    "line_answered_at",
    "queue",
    "queue_entered_at",
    "queue_left_at",
    "wait_s",
    "answered_at",
    "agent_name",
    "agent_interface",
    "talk_s",
    "transfers",
    "ended_at",
    "duration_s",
    "hangup_cause",
    "hangup_cause_text",
    "recording_file",
    "outcome",
    "reconciled",
)


def parse_filter(request: web.Request) -> CallFilter:
    query = request.query
    since = parse_datetime(query.get("from"), "from")
    until = parse_datetime(query.get("until"), "until")
    if since is not None and until is not None and until <= since:
        raise bad_request("until must be later than from", field="until")
    phone_e164 = phone_param(query.get("phone"))
    protocol = query.get("protocol", "").strip()
    if protocol and (not protocol.isdigit() or len(protocol) > 40):
        raise bad_request("protocol must be the number's digits", field="protocol")
    agent = query.get("agent", "").strip()
    if len(agent) > MAX_PARAM or any(ord(ch) < 32 for ch in agent):
        raise bad_request("agent is not a member name or interface", field="agent")
    outcome = query.get("outcome", "").strip()
    if outcome and outcome not in OUTCOMES:
        raise bad_request(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
    return CallFilter(
        since=since,
        until=until,
        phone_e164=phone_e164,
        protocol=protocol or None,
        agent=agent or None,
        outcome=outcome or None,
    )
