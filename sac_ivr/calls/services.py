"""Call log queries, and the running AMI side: client + call log writer + live state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.asterisk.ami import AmiClient, AmiError
from sac_ivr.calls.events import ChannelSnapshot
from sac_ivr.calls.tables import CallLog
from sac_ivr.calls.tracker import CallTracker
from sac_ivr.calls.writer import CallLogWriter
from sac_ivr.core import Core
from sac_ivr.db.base import utcnow
from sac_ivr.protocols.tables import Protocol

log = logging.getLogger(__name__)

EXTRAS_KEY = "calls"


# ------------------------------------------------------------------- queries
@dataclass(frozen=True)
class CallFilter:
    since: datetime | None = None  # started at or after
    until: datetime | None = None  # started before
    phone_e164: str | None = None
    protocol: str | None = None
    agent: str | None = None  # member name or interface
    outcome: str | None = None


async def find(
    session: AsyncSession, flt: CallFilter, limit: int, offset: int
) -> tuple[Sequence[CallLog], int]:
    """Calls, newest first."""
    query = select(CallLog)
    if flt.since is not None:
        query = query.where(CallLog.started_at >= flt.since)
    if flt.until is not None:
        query = query.where(CallLog.started_at < flt.until)
    if flt.phone_e164:
        query = query.where(CallLog.caller_e164 == flt.phone_e164)
    if flt.protocol:
        query = query.where(CallLog.protocol_number == flt.protocol)
    if flt.agent:
        query = query.where(
            or_(CallLog.agent_name == flt.agent, CallLog.agent_interface == flt.agent)
        )
    if flt.outcome:
        query = query.where(CallLog.outcome == flt.outcome)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(CallLog.started_at.desc(), CallLog.id.desc()).limit(limit).offset(offset)
    )
    return rows.all(), int(total or 0)


async def calls_of_protocol(session: AsyncSession, protocol: Protocol) -> Sequence[CallLog]:
    """The calls a protocol was given on or quoted in, oldest first."""
    conditions = [CallLog.protocol_number == protocol.number]
    if protocol.linkedid:
        conditions.append(CallLog.linkedid == protocol.linkedid)
    rows = await session.scalars(
        select(CallLog).where(or_(*conditions)).order_by(CallLog.started_at, CallLog.id)
    )
    return rows.all()


# ------------------------------------------------------------ the AMI side
class CallsRuntime:
    """Owns the AMI link and what is built from its events.

    Stored as ``core.extras["calls"]``; panels call :meth:`snapshot` and
    subscribe to ``core.live`` (event shapes: :mod:`sac_ivr.calls.tracker`).
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


async def start_calls(core: Core, app: web.Application) -> None:
    """Runner starter: follow calls over AMI when ``ami_enabled``; else do nothing."""
    if not core.settings.ami_enabled:
        return
    feature = CallsRuntime(core)
    await feature.start()
    core.extras[EXTRAS_KEY] = feature
