"""After an Asterisk restart the AMI link can come up before app_queue is loaded:
``QueueStatus`` is refused. sac-ivr asks again (a capped backoff) on the same link
until it answers, so the panels get their queues without waiting for a reconnect
(issue #10 item 3). Here app_queue is unloaded from the real Asterisk while
sac-ivr connects, then loaded again."""

from __future__ import annotations

import time
from typing import Any

from tests.asterisk.ami import AmiClient
from tests.asterisk.instance import AsteriskInstance
from tests.asterisk.stale import hang_up_callers


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.1)


def test_queue_status_refused_then_answered_seeds_the_queues_on_the_same_link(
    asterisk: AsteriskInstance, ami: AmiClient, sac_ivr: Any
) -> None:
    hang_up_callers(ami)
    unloaded = ami.action("ModuleLoad", Module="app_queue.so", LoadType="unload")
    assert unloaded.get("Response") == "Success", unloaded
    try:
        refused = ami.action("QueueStatus")
        assert refused.get("Response") == "Error", refused
        service = sac_ivr()
        token = service.create_token("sofia-seed", "supervisor")
        _wait(
            lambda: "queue status not available yet" in service.log_text(),
            30,
            f"QueueStatus refused:\n{service.log_text()[-2000:]}",
        )

        def queues() -> list[str]:
            answer = service.get("/api/v1/live/snapshot?view=supervisor", token)
            assert answer.status == 200, answer
            return [q["name"] for q in answer.body["queues"]]

        assert queues() == []
        loaded = ami.action("ModuleLoad", Module="app_queue.so", LoadType="load")
        assert loaded.get("Response") == "Success", loaded
        _wait(lambda: queues() == ["sac-agents"], 30, "the queues seeded")
        assert service.log_text().count("AMI connected to") == 1  # no reconnect needed
    finally:
        if ami.action("QueueStatus").get("Response") != "Success":
            ami.action("ModuleLoad", Module="app_queue.so", LoadType="load")
