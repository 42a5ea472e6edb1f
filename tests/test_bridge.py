"""What the call process hands to the web process (sac_ivr/bridge.py): the outbox
worker's wake-up and the panels' live events, over a real Unix socketpair."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from sac_ivr.bridge import CallEventReceiver, forward_call_events, make_channel
from sac_ivr.feature import Hook
from sac_ivr.live import LiveHub
from sac_ivr.notifications import services as notices
from sac_ivr.notifications.hooks import OutboxWakeup
from tests.notify_fakes import wait_until


class Worker:
    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


async def test_wake_ups_and_live_events_reach_the_web_side() -> None:
    call_end, web_end = make_channel()
    hub = forward_call_events(call_end)
    call: Any = SimpleNamespace(live=hub, outbox_wakeup=Hook[OutboxWakeup]("outbox_wakeup"))
    call.outbox_wakeup.add(hub.wake_outbox)
    worker = Worker()
    web: Any = SimpleNamespace(live=LiveHub(), outbox_wakeup=Hook[OutboxWakeup]("outbox_wakeup"))
    web.outbox_wakeup.add(worker.wake)
    receiver = CallEventReceiver(web, web_end)
    receiver.start()
    try:
        async with web.live.subscribe() as panel:
            # What lifecycle code run by an AGI route does in the call process:
            call.live.publish({"type": "protocol_updated", "number": "202611220000427"})
            for _ in range(3):  # e.g. three issuing batches in one loop iteration
                notices.wake_worker(call)
            event = await asyncio.wait_for(panel.get(), 10)
            assert event == {"type": "protocol_updated", "number": "202611220000427"}
            await wait_until(lambda: worker.woken, timeout=10, what="the wake-up")
            await asyncio.sleep(0.1)
            assert worker.woken == 1  # coalesced
    finally:
        await receiver.close()
        call_end.close()
        web_end.close()


async def test_sending_never_waits_for_a_stuck_web_process() -> None:
    call_end, web_end = make_channel()  # nobody reads web_end
    hub = forward_call_events(call_end)
    sender = hub.sender
    call: Any = SimpleNamespace(live=hub)
    for i in range(5000):
        call.live.publish({"type": "queue", "n": i, "pad": "x" * 200})
    assert sender.dropped > 0 and sender.sent > 0
    assert sender.sent + sender.dropped == 5000
    call_end.close()
    web_end.close()
