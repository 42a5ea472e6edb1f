"""What an earlier test that failed may leave in the shared Asterisk: callers still
waiting in the queue and members still in it (its SIPp phones were killed without a
BYE, and Asterisk keeps the channels). The queue would give a new agent the oldest
of those callers, or ring a dead member first. A test that adds an agent clears the
queue first, and uses the second agent endpoint (``index=1``), which no other test
uses: hanging up a stale call of the first one would send BYEs (retransmitted for
half a minute) to the port a new phone listens on, and SIPp aborts on those."""

from __future__ import annotations

from tests.asterisk.ami import AmiClient, Message

QUEUE = "sac-agents"
AGENT_INDEX = 1  # sac-agent-2: see above


def _list(ami: AmiClient, action: str, **fields: str) -> list[Message]:
    mark = ami.mark()
    action_id = ami.action(action, **fields).get("ActionID", "")
    ami.wait_event({"Event": f"{action}Complete", "ActionID": action_id}, timeout=10, since=mark)
    return ami.find_events({"ActionID": action_id}, mark)


def clear_queue(ami: AmiClient, keep: str, queue: str = QUEUE) -> list[str]:
    """Hang up every caller waiting in ``queue`` but the channel ``keep``, and remove
    every member; returns what was hung up or removed."""
    status = _list(ami, "QueueStatus", Queue=queue)
    callers = [
        e["Channel"]
        for e in status
        if e.get("Event") == "QueueEntry" and e.get("Channel") not in (None, keep)
    ]
    members = [
        e["Location"] for e in status if e.get("Event") == "QueueMember" and e.get("Location")
    ]
    for channel in callers:
        ami.action("Hangup", Channel=channel)
    for member in members:
        ami.action("QueueRemove", Queue=queue, Interface=member)
    return callers + members


def hang_up_callers(ami: AmiClient, prefix: str = "PJSIP/sac-test-caller-") -> list[str]:
    """Hang up every caller channel still up (a SIPp caller killed without a BYE stays
    in the dialplan, then in the queue, where the next test's agent would get it)."""
    channels = [
        e["Channel"]
        for e in _list(ami, "CoreShowChannels")
        if e.get("Event") == "CoreShowChannel" and e.get("Channel", "").startswith(prefix)
    ]
    for channel in channels:
        ami.action("Hangup", Channel=channel)
    return channels
