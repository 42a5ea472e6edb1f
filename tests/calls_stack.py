"""The AMI side as the service runs it (client + call log + live state) against a
fake Asterisk Manager, for the call log and live state tests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from sac_ivr.asterisk.ami import AmiClient
from sac_ivr.calls.runtime import CallsRuntime
from sac_ivr.calls.schemas import call_view
from sac_ivr.calls.tables import CallLog
from sac_ivr.core import Core
from sac_ivr.features import build_core
from tests.conftest import make_settings
from tests.fakeasterisk.ami import FakeAmi, load_trace, wait_until

ANSWERED = "1732280000.1"  # linkedids of the traces
ABANDONED = "1732280100.3"
MIDCALL = "1732280200.5"
T_ANSWERED = 1732280000.1  # their first event
T_ABANDONED = 1732280100.2
T_MIDCALL = 1732280200.3


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(round(epoch, 6), UTC)


def close_to(value: datetime | None, epoch: float) -> bool:
    return value is not None and abs(value.timestamp() - epoch) < 0.001


def without(events: Iterable[dict[str, str]], **match: str) -> list[dict[str, str]]:
    """The events minus those whose fields all equal ``match``."""
    return [e for e in events if not all(e.get(k) == v for k, v in match.items())]


@dataclass
class Stack:
    fake: FakeAmi
    core: Core
    feature: CallsRuntime

    @property
    def client(self) -> AmiClient:
        return self.feature.client

    async def settle(self) -> None:
        """Everything pushed so far has been read, stored and applied.

        The fake answers the Ping after the events it pushed before it, on the
        same socket; the flush then waits for the writer's queue.
        """
        await self.client.ping()
        await self.feature.writer.flush()

    async def push_trace(self, name: str) -> None:
        await self.fake.push_trace(name)
        await self.settle()

    async def push(self, events: Iterable[dict[str, Any]]) -> None:
        await self.fake.push(*events)
        await self.settle()

    async def rows(self) -> list[CallLog]:
        async with self.core.sessionmaker() as session:
            return list((await session.scalars(select(CallLog).order_by(CallLog.id))).all())

    async def row(self, linkedid: str) -> CallLog:
        async with self.core.sessionmaker() as session:
            row = await session.scalar(select(CallLog).where(CallLog.linkedid == linkedid))
        assert row is not None, f"no call log row for {linkedid}"
        return row

    async def view(self, linkedid: str) -> dict[str, Any]:
        return call_view(await self.row(linkedid))

    async def wait_synced(self, count: int) -> None:
        await wait_until(lambda: self.feature.syncs >= count, 5.0, f"{count} AMI sync(s)")
        await wait_until(
            lambda: all(s.synced for s in self.feature.servers), 5.0, "following every server"
        )


async def start_stack(db_url: str, **overrides: Any) -> Stack:
    fake = await FakeAmi().start()
    fake.queue_status = load_trace("queuestatus.ami")
    settings = make_settings(
        db_url,
        ami_enabled=True,
        ami_port=fake.port,
        ami_secret=fake.secret,
        ami_reconcile_interval=0,
        ami_reconnect_max=0.05,
        ami_action_timeout=2.0,
        **overrides,
    )
    core = build_core(settings)
    client = AmiClient.from_settings(settings, backoff_min=0.01)
    feature = CallsRuntime(core, client)
    await feature.start()
    core.live_calls = feature
    core.background.append(feature)
    stack = Stack(fake, core, feature)
    await stack.wait_synced(1)
    return stack


async def stop_stack(stack: Stack) -> None:
    await stack.core.close()
    await stack.fake.close()
