"""How calls look over HTTP, and how the listing's query parameters are read."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo

from sac_ivr.calls.fold import dt
from sac_ivr.calls.services import CallFilter
from sac_ivr.calls.tables import CallLog
from sac_ivr.http.endpoints import CsvExport, ListQuery, PageOf, ResponseModel
from sac_ivr.http.errors import bad_request
from sac_ivr.http.fields import (
    DATE_DESCRIPTION,
    PhoneQuery,
    QueryChoice,
    QueryDatetime,
    QueryText,
    Reads,
    Timestamp,
)
from sac_ivr.phones import mask_phone

OUTCOMES = ("in_progress", "answered", "abandoned", "ivr")
MAX_PARAM = 128
PROTOCOL_MAX = 40
_PROTOCOL = re.compile(rf"[0-9]{{1,{PROTOCOL_MAX}}}")


class Transfer(ResponseModel):
    model_config = ConfigDict(extra="allow")

    at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    kind: Literal["blind", "attended"] | None = None
    by: str | None = None
    to: str | None = None
    result: str | None = None


class Call(ResponseModel):
    """One call (all its legs share the linkedid), built from AMI events."""

    server: str = Field(description="The Asterisk server it is on (its name in ami_servers)")
    linkedid: str = Field(description="Asterisk's id of the call, unique within its server")
    protocol: str | None = Field(description="Protocol number given on this call")
    caller_number: str | None = Field(description="Caller ID as Asterisk gave it")
    caller_e164: str | None
    caller_masked: str | None
    caller_name: str | None
    called_number: str | None = Field(description="The number dialled (DNID)")
    channel: str | None = Field(description="The caller's leg")
    started_at: Timestamp
    line_answered_at: Timestamp | None = Field(description="When Asterisk answered")
    queue: str | None
    queue_entered_at: Timestamp | None
    queue_left_at: Timestamp | None
    wait_s: float | None = Field(description="Queue entry to agent (or leaving)")
    answered_at: Timestamp | None = Field(description="When an agent answered")
    agent_interface: str | None
    agent_name: str | None
    talk_s: float | None
    transfers: list[Transfer]
    ended_at: Timestamp | None
    duration_s: float | None
    hangup_cause: int | None = Field(description="Q.850 cause code")
    hangup_cause_text: str | None
    recording_file: str | None = Field(description="MixMonitor's file, if recorded")
    outcome: Literal["in_progress", "answered", "abandoned", "ivr"] = Field(
        description="abandoned: queued and left without an agent; ivr: never queued"
    )
    reconciled: bool = Field(
        description="Closed by reconciliation: its hangup was not seen over AMI "
        "(link down); ended_at is then when it was last known up"
    )
    ended_by: Timestamp | None = Field(
        default=None,
        description="Reconciled calls: the latest it can have ended (when it was found "
        "gone); it ended between ended_at and this",
    )


class CallPage(PageOf[Call]):
    pass


def call_model(c: CallLog) -> Call:
    return Call(
        server=c.server,
        linkedid=c.linkedid,
        protocol=c.protocol_number,
        caller_number=c.caller_number,
        caller_e164=c.caller_e164,
        caller_masked=mask_phone(c.caller_e164 or c.caller_number),
        caller_name=c.caller_name,
        called_number=c.called_number,
        channel=c.channel,
        started_at=c.started_at,
        line_answered_at=c.line_answered_at,
        queue=c.queue,
        queue_entered_at=c.queue_entered_at,
        queue_left_at=c.queue_left_at,
        wait_s=c.wait_s,
        answered_at=c.answered_at,
        agent_interface=c.agent_interface,
        agent_name=c.agent_name,
        talk_s=c.talk_s,
        transfers=[Transfer.model_validate(t) for t in c.transfers or []],
        ended_at=c.ended_at,
        duration_s=c.duration_s,
        hangup_cause=c.hangup_cause,
        hangup_cause_text=c.hangup_cause_text,
        recording_file=c.recording_file,
        outcome=c.outcome,  # type: ignore[arg-type]  # the column holds OUTCOMES only
        reconciled=c.reconciled,
        ended_by=_ended_by(c),
    )


def _ended_by(c: CallLog) -> datetime | None:
    if not c.reconciled or c.ended_at is None:
        return None
    legs = (c.state or {}).get("legs", {})
    bounds = [leg["gone_by"] for leg in legs.values() if leg.get("gone_by") is not None]
    return dt(max(bounds)) if bounds else None


def call_view(c: CallLog) -> dict[str, Any]:
    """A call as JSON values (the ``calls`` section of a protocol's agent view)."""
    return call_model(c).model_dump(mode="json", exclude_unset=True)


CALLS_CSV = CsvExport(
    columns=(
        "server",
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
    ),
    filename="calls.csv",
)
LIST_COLUMNS = CALLS_CSV.columns


def _later_than_from(value: datetime | None, info: ValidationInfo) -> datetime | None:
    since = info.data.get("from_")
    if since is not None and value is not None and value <= since:
        raise bad_request("until must be later than from", field="until")
    return value


def _protocol(raw: str | None, name: str) -> str | None:
    protocol = (raw or "").strip()
    if protocol and not _PROTOCOL.fullmatch(protocol):
        raise bad_request("protocol must be the number's digits", field="protocol")
    return protocol or None


class CallQuery(ListQuery):
    """``GET /api/v1/calls``: the page, then the filters, in this order."""

    from_: Annotated[datetime | None, QueryDatetime()] = Field(
        default=None,
        description="Calls started at or after (ISO 8601; a date alone is "
        "midnight UTC; a time without offset is UTC). " + DATE_DESCRIPTION,
    )
    until: Annotated[datetime | None, QueryDatetime(), AfterValidator(_later_than_from)] = Field(
        default=None, description="Calls started before (later than from). " + DATE_DESCRIPTION
    )
    phone: PhoneQuery = Field(
        default=None, description="Caller's number in any Brazilian format; compared in E.164."
    )
    protocol: Annotated[
        str | None,
        Reads(_protocol, {"type": "string", "pattern": f"^[0-9]{{1,{PROTOCOL_MAX}}}$"}),
    ] = None
    agent: Annotated[str | None, QueryText(MAX_PARAM)] = Field(
        default=None, description="Queue member name or interface of the answering agent."
    )
    outcome: Annotated[str | None, QueryChoice(OUTCOMES)] = None
    server: Annotated[str | None, QueryText(64)] = Field(
        default=None, description="Only the calls of this Asterisk server (its name)."
    )

    def to_filter(self) -> CallFilter:
        return CallFilter(
            since=self.from_,
            until=self.until,
            phone_e164=self.phone,
            protocol=self.protocol,
            agent=self.agent,
            outcome=self.outcome,
            server=self.server,
        )
