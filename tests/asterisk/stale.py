"""Callers left waiting in the queue by an earlier test that failed (its SIPp killed
without a BYE, Asterisk keeps the channel) would take the agent a later test adds:
hang them up first."""

from __future__ import annotations

from tests.asterisk.ami import AmiClient

QUEUE = "sac-agents"


def hang_up_other_waiting_callers(ami: AmiClient, keep: str, queue: str = QUEUE) -> list[str]:
    """Hang up every channel waiting in ``queue`` but ``keep``; returns their names."""
    mark = ami.mark()
    answer = ami.action("QueueStatus", Queue=queue)
    action_id = answer.get("ActionID", "")
    ami.wait_event({"Event": "QueueStatusComplete", "ActionID": action_id}, timeout=10, since=mark)
    stale = [
        e["Channel"]
        for e in ami.find_events({"Event": "QueueEntry", "ActionID": action_id}, mark)
        if e.get("Channel") != keep
    ]
    for channel in stale:
        ami.action("Hangup", Channel=channel)
    return stale
