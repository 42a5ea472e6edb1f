"""After an Asterisk restart the AMI link can come up before app_queue is loaded:
``QueueStatus`` is refused. sac-ivr asks again (a capped backoff) on the same link
until it answers, so the panels get their queues without waiting for a reconnect
(issue #10 item 3). Here app_queue is unloaded from the real Asterisk while
sac-ivr connects, then loaded again."""

from __future__ import annotations

from typing import Any

from tests.asterisk.ami import AmiClient
from tests.asterisk.e2e_api import wait_until
from tests.asterisk.instance import AsteriskInstance
from tests.asterisk.stale import hang_up_callers


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
        wait_until(
            lambda: "queue status not available yet" in service.log_text(),
            f"QueueStatus refused:\n{service.log_text()[-2000:]}",
            timeout=30,
        )

        def queues() -> list[str]:
            answer = service.get("/api/v1/live/snapshot?view=supervisor", token)
            assert answer.status == 200, answer
            return [q["name"] for q in answer.body["queues"]]

        assert queues() == []
        loaded = ami.action("ModuleLoad", Module="app_queue.so", LoadType="load")
        assert loaded.get("Response") == "Success", loaded
        wait_until(lambda: queues() == ["sac-agents"], "the queues seeded", timeout=30)
        assert service.log_text().count("AMI connected to") == 1  # no reconnect needed
    finally:
        if ami.action("QueueStatus").get("Response") != "Success":
            ami.action("ModuleLoad", Module="app_queue.so", LoadType="load")
