"""AMI events read once: typed accessors over the plain dicts the AMI client hands out.

Both consumers of AMI events, the call log (:mod:`sac_ivr.calls.calllog`) and the
live state (:mod:`sac_ivr.calls.tracker`), read event fields only through this
module, so that a field means the same thing to both:

* :func:`field_str`: a header as a stripped string (first value if repeated), or None;
* :func:`to_int`: the one integer rule (None, or a default, for anything else);
* :func:`known_caller_id`: the one "unknown caller ID" rule;
* :func:`linkedid_of`: the call an event belongs to (its own or a party's Linkedid);
* :func:`party_legs`: the call's legs an event names (caller, dialled, transfer parties);
* :func:`event_time`: when it happened (``Timestamp``, else when it was read);
* :func:`protocol_of`: the protocol number announced by the dialplan's VarSet;
* :class:`ChannelSnapshot`: a ``CoreShowChannels`` answer, read once for the one
  reconciliation both consumers run after a (re)connect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from sac_ivr.agi import channel_vars

AmiEvent = Mapping[str, Any]

# What a call is doing now, as the live state (and the panels) name it.
CALL_STATES = ("ivr", "queued", "ringing", "connected")

# Header prefixes naming the channels an event is about.
PARTY_PREFIXES = ("", "Dest", "Transferer", "Transferee", "OrigTransferer", "SecondTransferer")
LINKEDID_KEYS = tuple(f"{p}Linkedid" for p in PARTY_PREFIXES)
MAX_ID = 64  # a uniqueid or linkedid longer than this is not Asterisk's
UNKNOWN_CALLER_IDS = frozenset({"", "<unknown>", "unknown", "anonymous"})
UP_STATE = "6"  # ChannelState of an answered channel
RECORDING_VARIABLE = "MIXMONITOR_FILENAME"
MAX_PROTOCOL_CHARS = 40
_UNIQUEID_EPOCH = re.compile(r"(?:^|-)(\d{9,11})\.\d+$")
_DURATION = re.compile(r"^(\d+):(\d{2}):(\d{2})$")


def field_str(event: AmiEvent, key: str, max_len: int = 512) -> str | None:
    """A header as a stripped string (first value if repeated), None when empty."""
    value = event.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    text = str(value).strip()
    return text[:max_len] if text else None


def field_id(event: AmiEvent, key: str) -> str | None:
    """A uniqueid or linkedid header; None when missing or too long to be real."""
    value = field_str(event, key, MAX_ID + 1)
    return value if value and len(value) <= MAX_ID else None


@overload
def to_int(value: str | None, default: int) -> int: ...
@overload
def to_int(value: str | None, default: None = None) -> int | None: ...
def to_int(value: str | None, default: int | None = None) -> int | None:
    """The one integer rule: ``default`` for None or anything ``int()`` refuses."""
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def to_seconds(value: str | None) -> float | None:
    """A non-negative number of seconds, else None."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number >= 0 else None


def flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes"}


def known_caller_id(value: str | None, max_len: int = 64) -> str | None:
    """The caller ID, or None when Asterisk says it is unknown (or withheld)."""
    if value is None or value.strip().lower() in UNKNOWN_CALLER_IDS:
        return None
    return value[:max_len]


def linkedid_of(event: AmiEvent) -> str | None:
    """The call the event is about: the first party's Linkedid that looks real."""
    for key in LINKEDID_KEYS:
        value = field_id(event, key)
        if value:
            return value
    return None


def party_legs(event: AmiEvent, linkedid: str) -> list[tuple[str, str, str | None]]:
    """``(prefix, uniqueid, channel)`` of every party of the event on this call."""
    legs = []
    for prefix in PARTY_PREFIXES:
        uid = field_id(event, f"{prefix}Uniqueid")
        if uid and field_str(event, f"{prefix}Linkedid") == linkedid:
            legs.append((prefix, uid, field_str(event, f"{prefix}Channel", 128)))
    return legs


def is_origin(event: AmiEvent, linkedid: str) -> bool:
    """The event is about the caller's own leg (its uniqueid is the call's linkedid)."""
    return field_id(event, "Uniqueid") == linkedid and field_str(event, "Linkedid") == linkedid


def event_time(event: AmiEvent, received_at: datetime) -> datetime:
    """``Timestamp`` (``timestampevents=yes`` in manager.conf), else ``received_at``."""
    raw = field_str(event, "Timestamp", 32)
    if raw:
        try:
            return datetime.fromtimestamp(float(raw), UTC)
        except (ValueError, OverflowError, OSError):
            pass
    return received_at


def uniqueid_epoch(uniqueid: str) -> datetime | None:
    """Asterisk's uniqueids are ``[system-]EPOCH.SEQ``: when the channel was created."""
    match = _UNIQUEID_EPOCH.search(uniqueid)
    return datetime.fromtimestamp(int(match.group(1)), UTC) if match else None


def varset_name(event: AmiEvent) -> str:
    """A VarSet's variable, as the dialplan names it (inheritance underscores dropped)."""
    return (field_str(event, "Variable", 80) or "").lstrip("_").upper()


def protocol_of(event: AmiEvent) -> str | None:
    """The protocol number a ``VarSet`` of ``SAC_PROTOCOL`` announces, else None."""
    if varset_name(event) != channel_vars.PROTOCOL:
        return None
    value = field_str(event, "Value", 512)
    if value and value.isdigit() and len(value) <= MAX_PROTOCOL_CHARS:
        return value
    return None


def recording_of(event: AmiEvent) -> str | None:
    """The file a ``VarSet`` of ``MIXMONITOR_FILENAME`` names, else None."""
    if varset_name(event) != RECORDING_VARIABLE:
        return None
    return field_str(event, "Value", 512)


@dataclass(frozen=True)
class LiveChannel:
    """One ``CoreShowChannel`` item."""

    uniqueid: str
    linkedid: str
    channel: str | None
    caller: str | None
    application: str
    bridged: bool
    duration: timedelta | None


@dataclass(frozen=True)
class ChannelSnapshot:
    """Asterisk's channels at ``sent_at`` (when ``CoreShowChannels`` was sent).

    The one reconciliation rule, shared by the call log and the live state: a leg
    or call we know of is gone when Asterisk no longer lists it AND we last heard of
    it before the snapshot was asked for (one heard of later may be too new for it).
    """

    sent_at: datetime
    channels: tuple[LiveChannel, ...] = ()
    uniqueids: frozenset[str] = field(default_factory=frozenset)
    linkedids: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def read(cls, items: Sequence[AmiEvent], sent_at: datetime) -> ChannelSnapshot:
        channels = []
        for item in items:
            uid, linkedid = field_id(item, "Uniqueid"), field_id(item, "Linkedid")
            if not uid or not linkedid:
                continue
            duration = _DURATION.match(field_str(item, "Duration", 16) or "")
            h, m, s = (int(x) for x in duration.groups()) if duration else (0, 0, 0)
            channels.append(
                LiveChannel(
                    uniqueid=uid,
                    linkedid=linkedid,
                    channel=field_str(item, "Channel", 128),
                    caller=known_caller_id(field_str(item, "CallerIDNum", 64)),
                    application=(field_str(item, "Application", 64) or "").lower(),
                    bridged=field_str(item, "BridgeId", 64) is not None,
                    duration=timedelta(hours=h, minutes=m, seconds=s) if duration else None,
                )
            )
        return cls(
            sent_at=sent_at,
            channels=tuple(channels),
            uniqueids=frozenset(c.uniqueid for c in channels),
            linkedids=frozenset(c.linkedid for c in channels),
        )

    def leg_gone(self, uniqueid: str, last_heard: datetime) -> bool:
        return uniqueid not in self.uniqueids and last_heard < self.sent_at

    def call_gone(self, linkedid: str, last_heard: datetime) -> bool:
        return linkedid not in self.linkedids and last_heard < self.sent_at
