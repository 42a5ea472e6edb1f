"""The running AMI side of the calls feature: for each Asterisk server, its AMI
client, the call log writer and the live call tracker fed from it, their
reconciliation with Asterisk, and the lock that lets one instance write its call log.

Every instance connects to every server's AMI (its panels show the live state);
for each server, only the instance holding the server's follower lock
(:mod:`sac_ivr.calls.follow`) writes its call log. The others keep the call log
events of the last ``STANDBY_KEEP_S`` seconds; when one takes over, it replays them
(merging is idempotent: events the previous follower stored change nothing), so a
hangup heard while the previous follower was dying still gives the call its real
end. Then it reconciles (``CoreShowChannels``), which closes what nobody heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from datetime import datetime
from typing import Any

from sac_ivr.asterisk.ami import AmiActionError, AmiClient, AmiError, AmiNotConnected, AmiTimeout
from sac_ivr.calls.events import ChannelSnapshot
from sac_ivr.calls.follow import FollowLock, PgFollowLock, Role, SoleFollower
from sac_ivr.calls.servers import AmiServer, ami_servers
from sac_ivr.calls.tracker import CallTracker
from sac_ivr.calls.writer import CallLogWriter
from sac_ivr.core import Core
from sac_ivr.db.base import utcnow
from sac_ivr.db.engine import is_sqlite

log = logging.getLogger(__name__)

STANDBY_KEEP_S = 30.0  # call log events a standby instance keeps for a takeover
STANDBY_MAX = 100_000
SEED_RETRY_MIN_S = 0.5  # QueueStatus refused (app_queue not loaded yet): retry
SEED_RETRY_MAX_S = 10.0


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class ServerRuntime:
    """One Asterisk server: AMI client, call log writer, live tracker, follower lock."""

    def __init__(self, core: Core, server: AmiServer, client: AmiClient | None = None) -> None:
        settings = core.settings
        self.core = core
        self.name = server.name
        self.client = client or AmiClient.from_settings(core.settings, server.host, server.port)
        self.writer = CallLogWriter(
            core.sessionmaker,
            reader=core.reader,
            server=server.name,
            holder=_holder(),
            gate=self._may_write,
        )
        self.tracker = CallTracker(self._publish)
        self.lock: FollowLock
        if not is_sqlite(core.engine):
            self.lock = PgFollowLock(
                settings.database_url,
                server.name,
                retry_s=settings.ami_follow_retry,
                expiry_s=settings.ami_follow_expiry,
                on_change=self._role_changed,
            )
        else:
            self.lock = SoleFollower(on_change=self._role_changed)
        self.reconcile_interval = settings.ami_reconcile_interval
        self.alive_interval = settings.ami_alive_interval
        self.reconciled_calls = 0  # calls closed by reconciliation since start
        self.syncs = 0  # (re)connects fully handled: reconciled and queues seeded
        self.takeovers = 0  # times this instance became the server's follower
        self._standby: deque[tuple[float, datetime, dict[str, Any]]] = deque(maxlen=STANDBY_MAX)
        self._synced = False  # following, and reconciled since: "alive" may be recorded
        self._tasks: list[asyncio.Task[None]] = []
        self._takeover: asyncio.Task[None] | None = None

    @property
    def following(self) -> bool:
        """This instance writes the server's call log (or will, once sure again)."""
        return self.lock.role is not Role.STANDBY

    @property
    def synced(self) -> bool:
        """Following, with the link up, and reconciled since (tests wait for it)."""
        return self._synced

    async def start(self) -> None:
        self.client.subscribe(self._on_event)
        self.client.subscribe(self.tracker.handle_event)
        self.client.add_link_callback(self._on_link)
        self.client.add_connect_callback(self._reconcile_on_connect)
        self.client.add_connect_callback(self._seed_on_connect)
        await self.writer.start()
        await self.lock.try_once()
        await self.client.start()
        self.lock.start()
        loop = asyncio.get_running_loop()
        if self.reconcile_interval > 0:
            self._tasks.append(
                loop.create_task(
                    self._reconcile_periodically(), name=f"calls-reconcile-{self.name}"
                )
            )
        self._tasks.append(loop.create_task(self._record_alive(), name=f"calls-alive-{self.name}"))

    # -- events
    def _publish(self, event: dict[str, Any]) -> None:
        self.core.live.publish({**event, "server": self.name})

    def _on_event(self, event: dict[str, Any]) -> None:
        if self.following:
            self.writer.feed(event)
            return
        now = time.monotonic()
        self._standby.append((now, utcnow(), event))
        while self._standby and self._standby[0][0] < now - STANDBY_KEEP_S:
            self._standby.popleft()

    def _on_link(self, connected: bool) -> None:
        self.tracker.set_link(connected)
        if not connected:
            self._synced = False

    async def _may_write(self) -> bool:
        return await self.lock.may_write()

    async def _role_changed(self, role: Role) -> None:
        """Called by the lock (without waiting for the takeover's reconciliation)."""
        self._synced = False
        if role is not Role.FOLLOWER:
            return
        self.takeovers += 1
        replay, self._standby = list(self._standby), deque(maxlen=STANDBY_MAX)
        for _mono, received_at, event in replay:
            self.writer.feed(event, received_at)
        if self.client.connected:
            previous = self._takeover
            if previous is not None:
                previous.cancel()
            self._takeover = asyncio.get_running_loop().create_task(
                self._reconcile_after_takeover(), name=f"calls-takeover-{self.name}"
            )

    async def _reconcile_after_takeover(self) -> None:
        try:
            await self.reconcile(use_alive=True)
        except AmiError as exc:  # the next connect reconciles
            log.warning(
                "call reconciliation of server %s after takeover failed: %s", self.name, exc
            )

    # -- reconciliation and seeding
    async def reconcile(self, *, use_alive: bool = False) -> int:
        """Close what ended unseen: ``CoreShowChannels`` against the log and live state."""
        sent_at = utcnow()
        response = await self.client.send_action("CoreShowChannels")
        channels = [e for e in response.events if e.get("Event") == "CoreShowChannel"]
        snapshot = ChannelSnapshot.read(channels, sent_at)
        self.tracker.reconcile(snapshot)
        if not self.following:
            return 0
        closed = await self.writer.reconcile(
            snapshot, self.client.link_lost_at, use_alive=use_alive
        )
        self.reconciled_calls += closed
        if use_alive and self.lock.role is Role.FOLLOWER and self.client.connected:
            self._synced = True
        return closed

    async def seed_queues(self) -> None:
        response = await self.client.send_action("QueueStatus")
        self.tracker.seed_queues(response.events)

    async def _reconcile_on_connect(self, client: AmiClient) -> None:
        await self.reconcile(use_alive=True)

    async def _seed_on_connect(self, client: AmiClient) -> None:
        """QueueStatus, retried with a capped backoff until Asterisk answers it: after
        a restart the link can be up before app_queue is loaded (the action is then
        refused). A lost link ends the retries (the next connect seeds again)."""
        delay = SEED_RETRY_MIN_S
        try:
            while True:
                try:
                    await self.seed_queues()
                    return
                except (AmiActionError, AmiTimeout) as exc:
                    log.warning(
                        "AMI server %s: queue status not available yet (%s); retrying in %.1fs",
                        self.name,
                        exc,
                        delay,
                    )
                except AmiNotConnected:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, SEED_RETRY_MAX_S)
        finally:
            self.syncs += 1

    async def _reconcile_periodically(self) -> None:
        """Catches hangups lost without a reconnect (a dropped event, a bug)."""
        while True:
            await asyncio.sleep(self.reconcile_interval)
            if not self.client.connected:
                continue
            try:
                await self.reconcile(use_alive=self.writer.dropped > 0)
            except AmiError as exc:
                log.warning("periodic call reconciliation of %s failed: %s", self.name, exc)
            except Exception:
                log.exception("periodic call reconciliation of %s failed", self.name)

    async def _record_alive(self) -> None:
        """While following with the link up, record every ``alive_interval`` that the
        server's calls are followed (the bound of the end-time rule); one record in
        the writer's queue at a time, so a database outage does not pile them up."""
        pending: asyncio.Future[int] | None = None
        while True:
            await asyncio.sleep(self.alive_interval)
            if pending is not None and not pending.done():
                continue
            if self._synced and self.lock.role is Role.FOLLOWER and self.client.connected:
                pending = self.writer.alive(utcnow())
                pending.add_done_callback(_ignore_result)

    async def close(self) -> None:
        if self._synced and self.lock.role is Role.FOLLOWER and self.client.connected:
            # the last proof: calls found gone by the next follower ended after now
            self.writer.alive(utcnow()).add_done_callback(_ignore_result)
        tasks, self._tasks = self._tasks, []
        if self._takeover is not None:
            tasks.append(self._takeover)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()
        await self.writer.close()
        await self.lock.close()


def _ignore_result(future: asyncio.Future[int]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not record that calls are followed: %s", future.exception())


class CallsRuntime:
    """Owns the AMI links and what is built from their events, one
    :class:`ServerRuntime` per Asterisk server (``ami_servers``).

    Kept as ``core.live_calls`` when ``ami_enabled`` (:func:`keep_live_calls`) and
    started in the web process (:func:`start_calls`): panels call :meth:`snapshot`
    and subscribe to ``core.live`` (event shapes: :mod:`sac_ivr.calls.tracker`, each
    with the ``server`` it comes from).
    """

    def __init__(self, core: Core, client: AmiClient | dict[str, AmiClient] | None = None) -> None:
        """``client``: the first server's AMI client, or clients by server name
        (tests); by default built from the settings."""
        self.core = core
        servers = ami_servers(core.settings)
        if isinstance(client, AmiClient):
            clients = {servers[0].name: client}
        else:
            clients = dict(client or {})
        self.servers = [ServerRuntime(core, s, clients.get(s.name)) for s in servers]

    # The first (usually only) server's parts
    @property
    def client(self) -> AmiClient:
        return self.servers[0].client

    @property
    def writer(self) -> CallLogWriter:
        return self.servers[0].writer

    @property
    def tracker(self) -> CallTracker:
        return self.servers[0].tracker

    @property
    def syncs(self) -> int:
        return min(s.syncs for s in self.servers)

    @property
    def reconciled_calls(self) -> int:
        return sum(s.reconciled_calls for s in self.servers)

    def server(self, name: str) -> ServerRuntime:
        return next(s for s in self.servers if s.name == name)

    async def start(self) -> None:
        for server in self.servers:
            await server.start()

    async def reconcile(self) -> int:
        return sum([await server.reconcile() for server in self.servers])

    def snapshot(self) -> dict[str, Any]:
        """The trackers' snapshots in one: calls of every server (each with its
        ``server``), queues of the same name merged (their waiting callers and
        members each say their server); ``ami_connected`` when every link is up,
        ``servers``: name -> link up."""
        parts = [(s.name, s.tracker.snapshot()) for s in self.servers]
        calls: list[dict[str, Any]] = []
        queues: dict[str, dict[str, Any]] = {}
        for name, part in parts:
            calls += [{**call, "server": name} for call in part["calls"]]
            for qname, queue in part["queues"].items():
                queue = {
                    **queue,
                    "waiting": [{**w, "server": name} for w in queue["waiting"]],
                    "members": [{**m, "server": name} for m in queue["members"]],
                }
                merged = queues.get(qname)
                queues[qname] = queue if merged is None else _merge_queues(merged, queue)
        calls.sort(key=lambda c: (c.get("started_at") or "", c["server"], c["linkedid"]))
        return {
            "ami_connected": all(part["ami_connected"] for _, part in parts),
            "servers": {name: part["ami_connected"] for name, part in parts},
            "at": parts[0][1]["at"],
            "calls": calls,
            "queues": dict(sorted(queues.items())),
        }

    async def close(self) -> None:
        for server in reversed(self.servers):
            await server.close()


def _merge_queues(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    waiting = sorted(a["waiting"] + b["waiting"], key=lambda w: w.get("entered_queue_at") or "")
    waits = [q["longest_wait_s"] for q in (a, b) if q["longest_wait_s"] is not None]
    oldest = [q["oldest_entered_at"] for q in (a, b) if q["oldest_entered_at"]]
    return {
        "name": a["name"],
        "calls_waiting": a["calls_waiting"] + b["calls_waiting"],
        "longest_wait_s": max(waits) if waits else None,
        "oldest_entered_at": min(oldest) if oldest else None,
        "waiting": waiting,
        "members": a["members"] + b["members"],
    }


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
