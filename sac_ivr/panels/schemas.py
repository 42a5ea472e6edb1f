"""How live calls and queues look to a panel, and how the session body is read.

The call tracker (``sac_ivr/calls/tracker.py``) is the source of the raw state; this
module turns one tracker snapshot into what one viewer may see: an agent gets the
calls ringing or connected on their own extension (caller in full) plus the calls
waiting in their queues (caller masked unless configured otherwise); a supervisor
gets everything. Views hold no values that change by themselves (no "seconds
waited"): the browser ticks the clocks from the timestamps and ``server_time``, so
two views differ only when something really happened.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field, WithJsonSchema, model_validator

from sac_ivr.auth.services import Identity
from sac_ivr.calls.events import CALL_STATES
from sac_ivr.calls.tables import DEFAULT_SERVER
from sac_ivr.http import inputs
from sac_ivr.http.endpoints import RequestModel, ResponseModel
from sac_ivr.http.errors import bad_request
from sac_ivr.http.fields import Reads
from sac_ivr.http.inputs import check_text, parse_choice
from sac_ivr.phones import mask_phone

MEMBER_STATUSES = ("available", "busy", "paused", "unavailable")
TOKEN_MAX = 200


@dataclass(frozen=True)
class ViewOptions:
    """What one viewer may see (derived from their token and the settings)."""

    supervisor: bool
    extension: str | None
    mask_queue_callers: bool

    @classmethod
    def of(cls, identity: Identity, view: str, mask_queue_callers: bool) -> ViewOptions:
        """``view`` is "agent" (own calls + queue, for anyone who takes calls) or
        "supervisor" (everything; the caller has checked the role)."""
        return cls(
            supervisor=view == "supervisor",
            extension=identity.extension,
            mask_queue_callers=mask_queue_callers,
        )

    def is_mine(self, interface: Any) -> bool:
        return bool(self.extension) and same_interface(interface, self.extension)


def same_interface(a: Any, b: Any) -> bool:
    """``PJSIP/1001`` and ``pjsip/1001`` are the same softphone."""
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    return a.strip().casefold() == b.strip().casefold() != ""


def iso_utc(value: Any) -> str | None:
    """A tracker timestamp (datetime, ISO text or epoch seconds) as ISO 8601 UTC, ms."""
    moment = to_datetime(value)
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_datetime(value: Any) -> datetime | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, (int, float)):
            if not math.isfinite(value):
                return None
            moment = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def is_mine(call: dict[str, Any], opts: ViewOptions) -> bool:
    """Ringing on the viewer's phone (a ring-all queue rings several: ``ringing``) or
    answered by them."""
    state = call.get("state")
    if state == "connected":
        return opts.is_mine(call.get("agent_interface") or call.get("agent"))
    if state == "ringing":
        ringing = call.get("ringing")
        rung = ringing if isinstance(ringing, list) else []
        return opts.is_mine(call.get("agent")) or any(opts.is_mine(i) for i in rung)
    return False


def call_key(view: dict[str, Any]) -> str:
    """A call's key in a live view: its server and linkedid (a linkedid is unique
    within one Asterisk only); the browser keys calls the same way (live.js)."""
    return f"{view['server']}/{view['linkedid']}"


def call_view(call: dict[str, Any], opts: ViewOptions) -> dict[str, Any] | None:
    """One tracker call as this viewer sees it, or None when it is not theirs to see.

    An agent sees the calls ringing on or answered at their extension, and the
    callers still waiting in the queue (queued, or ringing on someone else's phone).
    """
    linkedid = _text(call.get("linkedid"))
    state = call.get("state")
    if linkedid is None or state not in CALL_STATES:
        return None
    mine = is_mine(call, opts)
    if not opts.supervisor and not mine and state not in ("queued", "ringing"):
        return None
    raw_caller = _text(call.get("caller_e164")) or _text(call.get("caller"))
    masked = not opts.supervisor and not mine and opts.mask_queue_callers
    view: dict[str, Any] = {
        "server": _text(call.get("server")) or DEFAULT_SERVER,
        "linkedid": linkedid,
        "protocol": _text(call.get("protocol")),
        "caller": mask_phone(raw_caller) if masked else raw_caller,
        "caller_masked": masked and raw_caller is not None,
        "caller_e164": None if masked else _text(call.get("caller_e164")),
        "queue": _text(call.get("queue")),
        "state": state,
        "started_at": iso_utc(call.get("started_at")),
        "entered_queue_at": iso_utc(call.get("entered_queue_at")),
        "answered_at": iso_utc(call.get("answered_at")),
        "agent": _text(call.get("agent")) if (opts.supervisor or mine) else None,
        "agent_name": _text(call.get("agent_name")) if (opts.supervisor or mine) else None,
        "mine": mine,
    }
    if opts.supervisor:
        view["channel"] = _text(call.get("channel"))
        ringing = call.get("ringing")
        view["ringing"] = [str(i) for i in ringing] if isinstance(ringing, list) else []
    return view


def member_view(member: dict[str, Any]) -> dict[str, Any]:
    status = member.get("status")
    calls_taken = member.get("calls_taken")
    return {
        "interface": _text(member.get("interface")),
        "name": _text(member.get("name")),
        "status": status if status in MEMBER_STATUSES else "unavailable",
        "paused_reason": _text(member.get("paused_reason")),
        "calls_taken": calls_taken if isinstance(calls_taken, int) else None,
    }


def queue_view(
    name: str,
    queue: dict[str, Any],
    waiting_calls: list[dict[str, Any]],
    opts: ViewOptions,
    now: datetime,
) -> dict[str, Any]:
    """A queue: how many wait, since when the oldest waits, who serves it.

    ``oldest_entered_at`` is the tracker's, else the earliest of the waiting calls'
    own timestamps; only when none has one is it derived from ``longest_wait_s``
    (to the second, so that the view stays stable between two snapshots).
    """
    waiting = queue.get("waiting")
    count = queue.get("calls_waiting")
    if not isinstance(count, int) or isinstance(count, bool):
        count = len(waiting) if isinstance(waiting, list) else len(waiting_calls)
    stamps = [to_datetime(queue.get("oldest_entered_at"))]
    stamps += [to_datetime(c.get("entered_queue_at")) for c in waiting_calls]
    if isinstance(waiting, list):
        stamps += [to_datetime(w.get("entered_queue_at")) for w in waiting if isinstance(w, dict)]
    known = [s for s in stamps if s is not None]
    oldest = min(known) if known else None
    longest = queue.get("longest_wait_s")
    if oldest is None and count and isinstance(longest, (int, float)) and longest > 0:
        oldest = (now - timedelta(seconds=float(longest))).replace(microsecond=0)
    raw_members = queue.get("members")
    members = [member_view(m) for m in raw_members if isinstance(m, dict)] if raw_members else []
    counts = {status: 0 for status in MEMBER_STATUSES}
    for member in members:
        counts[member["status"]] += 1
    view: dict[str, Any] = {
        "name": name,
        "waiting": count,
        "oldest_entered_at": iso_utc(oldest) if count else None,
        "agents": counts,
    }
    if opts.supervisor:
        view["members"] = sorted(members, key=lambda m: m["name"] or m["interface"] or "")
    else:
        me = next((m for m in members if opts.is_mine(m["interface"])), None)
        view["me"] = me["status"] if me else None
    return view


def live_view(
    snapshot: dict[str, Any], opts: ViewOptions, now: datetime
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(calls by :func:`call_key`, queues by name) this viewer may see in a tracker
    snapshot."""
    raw_calls = [c for c in snapshot.get("calls") or () if isinstance(c, dict)]
    raw_queues = snapshot.get("queues") or {}
    if not isinstance(raw_queues, dict):
        raw_queues = {}
    queue_names = [str(n) for n in raw_queues]
    if not opts.supervisor:
        # An agent sees the queues they serve; when the tracker does not say (no
        # member list mentions them), every queue: a one-queue SAC is the usual case.
        own = [
            str(name)
            for name, queue in raw_queues.items()
            if isinstance(queue, dict)
            and any(
                isinstance(m, dict) and opts.is_mine(m.get("interface"))
                for m in queue.get("members") or ()
            )
        ]
        queue_names = own or queue_names
    calls: dict[str, dict[str, Any]] = {}
    for call in raw_calls:
        view = call_view(call, opts)
        if view is None:
            continue
        if not opts.supervisor and not view["mine"] and view["queue"] not in queue_names:
            if queue_names:  # a queue this agent does not serve
                continue
        calls[call_key(view)] = view
    queues: dict[str, dict[str, Any]] = {}
    for name in queue_names:
        queue = raw_queues.get(name)
        if not isinstance(queue, dict):
            queue = {}
        waiting_ids = _waiting_ids(queue.get("waiting"))
        waiting_calls = [
            c
            for c in raw_calls
            if _text(c.get("queue")) == name
            and (c.get("state") == "queued" or _text(c.get("linkedid")) in waiting_ids)
        ]
        queues[name] = queue_view(name, queue, waiting_calls, opts, now)
    return calls, queues


def _waiting_ids(waiting: Any) -> set[str]:
    """The tracker's ``waiting`` list may hold linkedids or call dicts."""
    ids: set[str] = set()
    for item in waiting if isinstance(waiting, list) else ():
        linkedid = _text(item.get("linkedid")) if isinstance(item, dict) else _text(item)
        if linkedid:
            ids.add(linkedid)
    return ids


def viewer_view(identity: Identity) -> dict[str, Any]:
    return {"name": identity.name, "role": identity.role, "extension": identity.extension}


VIEWS = ("agent", "supervisor")


def parse_view(request: web.Request) -> str:
    """``?view=agent`` (default) or ``?view=supervisor``; the view is also the role needed."""
    return parse_choice(request.query.get("view"), "view", VIEWS, "agent") or "agent"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def parse_session_body(body: Any) -> str:
    """The token of ``POST /api/v1/session``: ``{"token": "sac_..."}``."""
    if not isinstance(body, dict):
        raise bad_request('send a JSON object: {"token": "..."}', field="body")
    token = body.get("token")
    if not isinstance(token, str) or not token.strip():
        raise bad_request("token is required", field="token")
    return check_text(token, "token", TOKEN_MAX)


async def read_json(request: web.Request) -> Any:
    """A JSON body (:func:`sac_ivr.http.inputs.read_json`). The Content-Type must say
    so: a cross-site HTML form cannot send that without a CORS preflight, so no other
    site can post a login for the browser."""
    return await inputs.read_json(request)


# ------------------------------------------------------------------ declared shapes


class Viewer(ResponseModel):
    name: str
    role: Literal["agent", "supervisor", "admin"]
    extension: str | None = Field(description="The agent's queue interface, e.g. PJSIP/1001.")


class LiveCall(ResponseModel):
    server: str = Field(description="The Asterisk server the call is on (shown as Servidor).")
    linkedid: str = Field(description="Asterisk's id of the call, unique within its server.")
    protocol: str | None = None
    caller: str | None = Field(
        default=None,
        description="E.164 (or as received); only the last 4 digits for agents "
        "looking at other callers in the queue (panels_mask_queue_callers).",
    )
    caller_masked: bool | None = None
    caller_e164: str | None = None
    queue: str | None = None
    state: Literal["ivr", "queued", "ringing", "connected"]
    started_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    entered_queue_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    answered_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    agent: str | None = None
    agent_name: str | None = None
    mine: bool = Field(
        description="Ringing on (ring-all queues: among the phones rung) or answered "
        "at the viewer's own extension."
    )
    channel: str | None = Field(default=None, description="Supervisor view only.")
    ringing: list[str] | None = Field(
        default=None, description="Supervisor view only: the interfaces being rung now."
    )


class QueueMember(ResponseModel):
    interface: str | None = None
    name: str | None = None
    status: Literal["available", "busy", "paused", "unavailable"] | None = None
    paused_reason: str | None = None
    calls_taken: int | None = None


class AgentCounts(ResponseModel):
    """Members per status."""

    available: int | None = None
    busy: int | None = None
    paused: int | None = None
    unavailable: int | None = None


class LiveQueue(ResponseModel):
    name: str
    waiting: int
    oldest_entered_at: str | None = Field(json_schema_extra={"format": "date-time"})
    agents: AgentCounts
    members: list[QueueMember] | None = Field(default=None, description="Supervisors only.")
    me: str | None = Field(
        default=None, description="Agents only: their own member status in this queue."
    )


class LiveSnapshot(ResponseModel):
    server_time: str = Field(json_schema_extra={"format": "date-time"})
    view: Literal["agent", "supervisor"]
    ami: bool = Field(
        description="False when no call tracker runs (AMI disabled): "
        "the lists are then always empty."
    )
    ami_connected: bool = Field(
        description="The tracker's AMI link is up (false: the state may be stale)."
    )
    max_wait_s: int = Field(
        description="Longest acceptable wait (setting panels_max_wait_s; "
        "Portaria MJ 2.014/2008: 60 s, 45 s for financial core)."
    )
    heartbeat_s: float = Field(
        description="Seconds between heartbeats when idle (panels_heartbeat_s)."
    )
    viewer: Viewer
    calls: list[LiveCall]
    queues: list[LiveQueue]


def _view(raw: str | None, name: str) -> str:
    return parse_choice(raw, "view", VIEWS, "agent") or "agent"


class ViewQuery(RequestModel):
    view: Annotated[
        str,
        Reads(
            _view,
            {
                "enum": list(VIEWS),
                "default": "agent",
                "description": "agent (default): calls ringing or connected on the viewer's "
                "extension and the calls waiting in their queues, other callers masked. "
                "supervisor: every call, queue and agent; needs the supervisor role "
                "(403 otherwise).",
            },
        ),
    ] = "agent"


class SessionBody(RequestModel):
    """``{"token": "sac_..."}`` (other members are ignored)."""

    token: Annotated[str, WithJsonSchema({"type": "string"})]

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any) -> Any:
        return {"token": parse_session_body(data)}


class ProtocolPagePath(RequestModel):
    protocol: str


class StaticPath(RequestModel):
    name: str
