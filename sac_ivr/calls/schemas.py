"""How calls look over HTTP, and how the listing's query parameters are read."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from sac_ivr.calls.services import CallFilter
from sac_ivr.calls.tables import CallLog
from sac_ivr.http.errors import bad_request
from sac_ivr.http.inputs import parse_choice, parse_datetime, phone_param, query_text
from sac_ivr.http.listing import iso
from sac_ivr.phones import mask_phone

OUTCOMES = ("in_progress", "answered", "abandoned", "ivr")
MAX_PARAM = 128
PROTOCOL_MAX = 40
_PROTOCOL = re.compile(rf"[0-9]{{1,{PROTOCOL_MAX}}}")


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
    protocol = (query.get("protocol") or "").strip()
    if protocol and not _PROTOCOL.fullmatch(protocol):
        raise bad_request("protocol must be the number's digits", field="protocol")
    agent = query_text(query.get("agent"), "agent", MAX_PARAM)
    outcome = parse_choice(query.get("outcome"), "outcome", OUTCOMES)
    return CallFilter(
        since=since,
        until=until,
        phone_e164=phone_e164,
        protocol=protocol or None,
        agent=agent or None,
        outcome=outcome or None,
    )
