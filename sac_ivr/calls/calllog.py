"""The call log's merge rules: one ``CallLog`` row per ``linkedid`` (the wazo-call-logd
model, on AMI). Pure functions over a row: no database, no I/O.

* :func:`apply_event` folds one event into the row (:func:`sac_ivr.calls.fold.fold_event`:
  order-independent, idempotent) and then :func:`derive` computes what follows
  from the facts: the call has ended when every leg it has seen has hung up
  (``ended_at`` is the last leg's hangup), its cause is the caller's leg's (else the
  last leg's with one), durations, and the outcome.
* :func:`reconcile_row` closes the legs Asterisk no longer has (the one rule of
  :class:`~sac_ivr.calls.events.ChannelSnapshot`).

An event's time is its ``Timestamp`` header (``timestampevents=yes`` in
manager.conf, recommended) or, without one, when we read it. Storing rows is the
writer's job (:mod:`sac_ivr.calls.writer`); what a call changes in the protocols
feature's tables is :mod:`sac_ivr.calls.protocol_links`'.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from sac_ivr.calls.events import ChannelSnapshot
from sac_ivr.calls.fold import all_legs_hung_up, dt, fold_event, ts
from sac_ivr.calls.tables import DEFAULT_SERVER, CallLog
from sac_ivr.phones import normalize_phone

# Events the call log reads; any other is ignored.
HANDLED_EVENTS = frozenset(
    {
        "Newchannel",
        "Newstate",
        "NewCallerid",
        "VarSet",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentCalled",
        "AgentConnect",
        "AgentComplete",
        "AgentRingNoAnswer",
        "DialBegin",
        "DialEnd",
        "BridgeEnter",
        "BridgeLeave",
        "BlindTransfer",
        "AttendedTransfer",
        "MixMonitorStart",
        "MixMonitorStop",
        "Hangup",
    }
)
RECONCILED_TEXT = "unknown (closed by reconciliation: hangup not seen over AMI)"


def new_call(
    linkedid: str, at: datetime, received_at: datetime, server: str = DEFAULT_SERVER
) -> CallLog:
    return CallLog(
        server=server,
        linkedid=linkedid,
        started_at=at,
        transfers=[],
        state={"legs": {}},
        outcome="in_progress",
        reconciled=False,
        last_event_at=received_at,
    )


def apply_event(row: CallLog, event: dict[str, Any], at: datetime, received_at: datetime) -> None:
    """Merge one event into the row (idempotent, order-independent)."""
    fold_event(row, event, at, received_at)
    derive(row)


def derive(row: CallLog) -> None:
    """Fields computed from the merged ones: end, cause, durations, outcome."""
    state = row.state or {}
    legs: dict[str, dict[str, Any]] = state.get("legs", {})
    if all_legs_hung_up(row):
        row.ended_at = dt(max(leg["hungup"] for leg in legs.values()))
        origin = legs.get(row.linkedid)
        if origin is not None and origin.get("cause") is not None:
            source: dict[str, Any] | None = origin
        else:
            with_cause = [leg for leg in legs.values() if leg.get("cause") is not None]
            source = max(with_cause, key=lambda leg: leg["hungup"]) if with_cause else None
        row.hangup_cause = source.get("cause") if source else None
        row.hangup_cause_text = source.get("cause_txt") if source else None
        row.reconciled = any(leg.get("reconciled") for leg in legs.values())
        if source is None and row.reconciled:
            row.hangup_cause_text = RECONCILED_TEXT
    else:
        row.ended_at = None
        row.hangup_cause = None
        row.hangup_cause_text = None
        row.reconciled = False
    row.caller_e164 = normalize_phone(row.caller_number)
    row.duration_s = _seconds(row.started_at, row.ended_at)
    if row.queue_entered_at is not None:
        until = row.answered_at or row.queue_left_at or row.ended_at
        row.wait_s = _seconds(row.queue_entered_at, until)
    else:
        row.wait_s = None
    if state.get("talk") is not None:
        row.talk_s = float(state["talk"])
    else:
        row.talk_s = _seconds(row.answered_at, row.ended_at)
    if row.ended_at is None:
        row.outcome = "in_progress"
    elif row.answered_at is not None:
        row.outcome = "answered"
    elif row.queue_entered_at is not None:
        row.outcome = "abandoned"
    else:
        row.outcome = "ivr"


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds()), 3)


def reconcile_row(row: CallLog, snapshot: ChannelSnapshot, lost_at: datetime | None) -> bool:
    """Close the legs Asterisk no longer has; True when the row changed (the call
    may have ended by this: ``row.ended_at`` says).

    Only legs last heard of before the snapshot was asked for are judged: a leg born
    after it is not in it yet.

    **The end-time rule.** A leg found gone hung up at some moment nobody saw,
    between when it was last known up and when the snapshot was asked for. It is
    recorded as ending when it was last known up: the latest of its last event and
    ``lost_at``, which the owner sets to the time the AMI link was lost or, after a
    (re)connect, to the last ``alive`` record of its server (written by whichever
    instance followed it, every ``ami_alive_interval`` seconds, once the events read
    before it were stored; see :class:`~sac_ivr.calls.tables.AmiFollower`). The
    error is at most ``gone_by - ended_at``: the time no instance followed the
    server, plus one ``ami_alive_interval``; ``gone_by`` (the snapshot's time, the
    latest the call can have ended) is kept in the leg's state.
    """
    if row.ended_at is not None:
        return False
    state = copy.deepcopy(row.state) if row.state else {}
    legs: dict[str, dict[str, Any]] = state.setdefault("legs", {})
    changed = False
    for uid, leg in legs.items():
        if leg.get("hungup") is not None:
            continue
        if not snapshot.leg_gone(uid, dt(leg.get("seen", 0.0)) or row.last_event_at):
            continue
        end = leg.get("last") or ts(row.last_event_at)
        if lost_at is not None and ts(lost_at) > end:
            end = ts(lost_at)
        leg.update(
            hungup=end, cause=None, cause_txt=None, reconciled=True, gone_by=ts(snapshot.sent_at)
        )
        changed = True
    if not legs and snapshot.call_gone(row.linkedid, row.last_event_at):
        end = ts(lost_at) if lost_at else ts(row.last_event_at)
        end = max(end, ts(row.started_at))
        legs[row.linkedid] = {
            "hungup": end,
            "reconciled": True,
            "last": end,
            "seen": end,
            "gone_by": ts(snapshot.sent_at),
        }
        changed = True
    if changed:
        row.state = state
        derive(row)
    return changed
