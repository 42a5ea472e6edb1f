"""The running AMI side of the calls feature: the AMI client, the call log writer and
the live call tracker fed from it, and their reconciliation with Asterisk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sac_ivr.asterisk.ami import AmiClient, AmiError
from sac_ivr.calls.events import ChannelSnapshot
from sac_ivr.calls.tracker import CallTracker
from sac_ivr.calls.writer import CallLogWriter
from sac_ivr.core import Core
from sac_ivr.db.base import utcnow

log = logging.getLogger(__name__)


class CallsRuntime:
    """Owns the AMI link and what is built from its events.

    Kept as ``core.live_calls`` when ``ami_enabled`` (:func:`keep_live_calls`) and
    started in the web process (:func:`start_calls`): panels call :meth:`snapshot`
    and subscribe to ``core.live`` (event shapes: :mod:`sac_ivr.calls.tracker`).
    """

    def __init__(self, core: Core, client: AmiClient | None = None) -> None:
        self.core = core
        self.client = client or AmiClient.from_settings(core.settings)
        self.writer = CallLogWriter(core.sessionmaker, reader=core.reader)
        self.tracker = CallTracker(core.live.publish)
        self.reconcile_interval = core.settings.ami_reconcile_interval
        self.reconciled_calls = 0  # calls closed by reconciliation since start
        self.syncs = 0  # (re)connects fully handled: reconciled and queues seeded
        self._periodic: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.client.subscribe(self.writer.feed)
        self.client.subscribe(self.tracker.handle_event)
        self.client.add_link_callback(self.tracker.set_link)
        self.client.add_connect_callback(self._reconcile_on_connect)
        self.client.add_connect_callback(self._seed_on_connect)
        await self.writer.start()
        await self.client.start()
        if self.reconcile_interval > 0:
            self._periodic = asyncio.get_running_loop().create_task(
                self._reconcile_periodically(), name="calls-reconcile"
            )

    def snapshot(self) -> dict[str, Any]:
        return self.tracker.snapshot()

    async def reconcile(self) -> int:
        """Close what ended unseen: ``CoreShowChannels`` against the log and live state."""
        sent_at = utcnow()
        response = await self.client.send_action("CoreShowChannels")
        channels = [e for e in response.events if e.get("Event") == "CoreShowChannel"]
        snapshot = ChannelSnapshot.read(channels, sent_at)
        self.tracker.reconcile(snapshot)
        closed = await self.writer.reconcile(snapshot, self.client.link_lost_at)
        self.reconciled_calls += closed
        return closed

    async def seed_queues(self) -> None:
        response = await self.client.send_action("QueueStatus")
        self.tracker.seed_queues(response.events)

    async def _reconcile_on_connect(self, client: AmiClient) -> None:
        await self.reconcile()

    async def _seed_on_connect(self, client: AmiClient) -> None:
        try:
            await self.seed_queues()
        finally:
            self.syncs += 1

    async def _reconcile_periodically(self) -> None:
        """Catches hangups lost without a reconnect (a dropped event, a bug)."""
        while True:
            await asyncio.sleep(self.reconcile_interval)
            if not self.client.connected:
                continue
            try:
                await self.reconcile()
            except AmiError as exc:
                log.warning("periodic call reconciliation failed: %s", exc)
            except Exception:
                log.exception("periodic call reconciliation failed")

    async def close(self) -> None:
        if self._periodic is not None:
            self._periodic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._periodic
            self._periodic = None
        await self.client.close()
        await self.writer.close()


def keep_live_calls(core: Core) -> None:
    """Wiring (the core is being built): with ``ami_enabled``, the core keeps this
    feature's runtime as ``core.live_calls``; it connects only once started."""
    if core.settings.ami_enabled:
        core.live_calls = CallsRuntime(core)


async def start_calls(core: Core) -> CallsRuntime | None:
    """Background work of the web process: follow calls over AMI when
    ``ami_enabled``; else do nothing."""
    runtime = core.live_calls
    if not isinstance(runtime, CallsRuntime):
        return None
    await runtime.start()
    return runtime
