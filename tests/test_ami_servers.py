"""Several Asterisk servers, one call log writer per server, the QueueStatus retry,
the migration that keys calls by server, and the call log through a database outage.

In process, against fake Asterisk Managers (tests/fakeasterisk/ami.py); the same
with real ``sac-ivr serve`` processes killed mid-call is tests/test_ami_takeover.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from sac_ivr.asterisk.ami import AmiClient
from sac_ivr.calls import services
from sac_ivr.calls.follow import Role, lock_key
from sac_ivr.calls.runtime import CallsRuntime, ServerRuntime
from sac_ivr.calls.schemas import call_view
from sac_ivr.calls.servers import AmiServer, ami_servers
from sac_ivr.calls.services import CallFilter
from sac_ivr.calls.tables import AmiFollower, CallLog
from sac_ivr.config import ConfigError, Settings
from sac_ivr.core import Core
from sac_ivr.db.engine import create_engine
from sac_ivr.db.migrate import alembic_config, upgrade_async
from sac_ivr.features import build_core, table_metadata
from sac_ivr.panels import schemas as panel_schemas
from tests.calls_stack import ABANDONED, ANSWERED, MIDCALL, T_MIDCALL, close_to
from tests.conftest import _pg_execute, make_settings, new_database
from tests.fakeasterisk.ami import FakeAmi, load_trace, wait_until
from tests.private_postgres import PrivatePostgres


@dataclass
class Instance:
    """One sac-ivr's AMI side (a core and its calls runtime), in this process."""

    core: Core
    runtime: CallsRuntime

    async def close(self) -> None:
        await self.core.close()

    async def rows(self) -> list[CallLog]:
        async with self.core.sessionmaker() as session:
            query = select(CallLog).order_by(CallLog.server, CallLog.id)
            return list((await session.scalars(query)).all())

    async def settle(self, fake: FakeAmi, server: ServerRuntime) -> None:
        """What ``fake`` pushed so far is read (the Ping answers after it) and stored."""
        if server.client.connected:
            await server.client.ping()
        await server.writer.flush()


async def start_instance(db_url: str, fakes: dict[str, FakeAmi], **overrides: Any) -> Instance:
    one = next(iter(fakes.values()))
    servers = [f"{name}=127.0.0.1:{fake.port}" for name, fake in fakes.items()]
    settings = make_settings(
        db_url,
        ami_enabled=True,
        ami_servers=servers,
        ami_secret=one.secret,
        ami_reconcile_interval=0,
        ami_reconnect_max=0.05,
        ami_action_timeout=2.0,
        **overrides,
    )
    core = build_core(settings)
    clients = {
        s.name: AmiClient(
            s.host, s.port, one.username, one.secret, action_timeout=2.0, backoff_min=0.01
        )
        for s in ami_servers(settings)
    }
    runtime = CallsRuntime(core, clients)
    core.live_calls = runtime
    core.background.append(runtime)
    await runtime.start()
    return Instance(core, runtime)


async def start_fakes(*names: str) -> dict[str, FakeAmi]:
    fakes = {}
    for name in names:
        fake = await FakeAmi().start()
        fake.queue_status = load_trace("queuestatus.ami")
        fakes[name] = fake
    return fakes


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    url, name = new_database("postgres", tmp_path)
    yield url
    asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def two_fakes() -> AsyncIterator[dict[str, FakeAmi]]:
    fakes = await start_fakes("east", "west")
    yield fakes
    for fake in fakes.values():
        await fake.close()


# -- settings ---------------------------------------------------------------------------
def test_one_server_by_default_and_a_list_when_given() -> None:
    settings = Settings(ami_host="10.0.0.5", ami_port=5039)
    assert ami_servers(settings) == [AmiServer("default", "10.0.0.5", 5039)]
    env = {"SAC_IVR_AMI_SERVERS": "sp1=10.0.0.1:5038, rj-2=[::1]:5040"}
    settings = Settings.load(env=env)
    assert ami_servers(settings) == [
        AmiServer("sp1", "10.0.0.1", 5038),
        AmiServer("rj-2", "::1", 5040),
    ]


@pytest.mark.parametrize(
    "value",
    ["sp1", "sp1=10.0.0.1", "=10.0.0.1:5038", "sp 1=h:5038", "a=h:x", "a=h:70000", "a=h:1,a=i:2"],
)
def test_a_malformed_server_list_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="ami_servers"):
        ami_servers(Settings.load(env={"SAC_IVR_AMI_SERVERS": value}))


def test_the_lock_key_is_stable_and_per_server() -> None:
    assert lock_key("east") == lock_key("east") != lock_key("west")
    assert -(2**63) <= lock_key("east") < 2**63


# -- several servers --------------------------------------------------------------------
async def test_the_same_linkedid_on_two_servers_is_two_calls(
    db_url: str, two_fakes: dict[str, FakeAmi]
) -> None:
    instance = await start_instance(db_url, two_fakes)
    try:
        east, west = instance.runtime.server("east"), instance.runtime.server("west")
        await wait_until(lambda: east.synced and west.synced, 10.0, "both servers followed")
        # The same recorded call on both servers: same linkedid, two different calls
        for name, fake in two_fakes.items():
            await fake.push_trace("queue_answered.ami")
            await fake.push_trace("reconnect_before.ami")  # still in progress
            await instance.settle(fake, instance.runtime.server(name))
        rows = await instance.rows()
        assert [(r.server, r.linkedid) for r in rows] == [
            ("east", ANSWERED),
            ("east", MIDCALL),
            ("west", ANSWERED),
            ("west", MIDCALL),
        ]
        async with instance.core.reader() as session:
            west_rows, total = await services.find(session, CallFilter(server="west"), 10, 0)
        assert total == 2 and {(r.server, r.linkedid) for r in west_rows} == {
            ("west", ANSWERED),
            ("west", MIDCALL),
        }
        views = [call_view(r) for r in rows]
        assert [v["server"] for v in views] == ["east", "east", "west", "west"]
        assert views[0]["outcome"] == views[2]["outcome"] == "answered"
        # Live state: the call in progress, once per server
        snapshot = instance.runtime.snapshot()
        assert [(c["server"], c["linkedid"]) for c in snapshot["calls"]] == [
            ("east", MIDCALL),
            ("west", MIDCALL),
        ]
        assert snapshot["servers"] == {"east": True, "west": True}
        opts = panel_schemas.ViewOptions(supervisor=True, extension=None, mask_queue_callers=True)
        calls, _ = panel_schemas.live_view(snapshot, opts, datetime.now(UTC))
        assert sorted(calls) == [f"east/{MIDCALL}", f"west/{MIDCALL}"]
        assert {c["server"] for c in calls.values()} == {"east", "west"}
        # the same queue on both servers is one queue: its members are both servers'
        members = snapshot["queues"]["sac-agents"]["members"]
        assert {m["server"] for m in members} == {"east", "west"}
        assert len(members) == 2 * len(
            instance.runtime.server("east").tracker.snapshot()["queues"]["sac-agents"]["members"]
        )
    finally:
        await instance.close()


async def test_a_call_that_ended_on_one_server_leaves_the_other_alone(
    db_url: str, two_fakes: dict[str, FakeAmi]
) -> None:
    instance = await start_instance(db_url, two_fakes)
    try:
        east, west = instance.runtime.server("east"), instance.runtime.server("west")
        await wait_until(lambda: east.synced and west.synced, 10.0, "both servers followed")
        for name, fake in two_fakes.items():
            await fake.push_trace("reconnect_before.ami")
            await instance.settle(fake, instance.runtime.server(name))
        live = [
            {"Channel": "PJSIP/trunk-00000005", "Uniqueid": MIDCALL, "Linkedid": MIDCALL,
             "Application": "Queue", "Duration": "00:00:20"},
        ]  # fmt: skip
        two_fakes["west"].channels = live
        two_fakes["east"].channels = []
        assert await west.reconcile() == 0
        assert await east.reconcile() == 1
        rows = {(r.server, r.linkedid): r for r in await instance.rows()}
        assert rows[("east", MIDCALL)].ended_at is not None
        assert rows[("west", MIDCALL)].ended_at is None
    finally:
        await instance.close()


# -- QueueStatus refused after an Asterisk restart --------------------------------------
async def test_the_queue_seed_is_retried_until_app_queue_answers(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sac_ivr.calls.runtime.SEED_RETRY_MIN_S", 0.05)
    fakes = await start_fakes("default")
    fake = fakes["default"]
    fake.refused = {"queuestatus"}  # app_queue not loaded yet
    instance = await start_instance(sqlite_url, fakes)
    try:
        server = instance.runtime.servers[0]
        await fake.wait_action("QueueStatus", count=3, timeout=10.0)
        assert instance.runtime.snapshot()["queues"] == {} and server.syncs == 0
        assert server.client.connected
        fake.refused = set()  # app_queue loaded
        await wait_until(lambda: server.syncs >= 1, 10.0, "the queues seeded")
        assert instance.runtime.snapshot()["queues"]["sac-agents"]["members"]
        assert fake.logins == 1 and fake.connections_made == 1  # no reconnect needed
    finally:
        await instance.close()
        await fake.close()


# -- one writer per server with two instances (PostgreSQL) ------------------------------
async def test_two_instances_one_writer_and_a_takeover_replays_the_hangup(
    postgres_url: str, two_fakes: dict[str, FakeAmi]
) -> None:
    fakes = {"east": two_fakes["east"]}
    fake = fakes["east"]
    first = await start_instance(postgres_url, fakes, ami_follow_retry=0.2)
    second = await start_instance(postgres_url, fakes, ami_follow_retry=0.2)
    try:
        a, b = first.runtime.servers[0], second.runtime.servers[0]
        await fake.wait_logins(2)
        await wait_until(lambda: a.synced, 10.0, "the first instance follows")
        assert a.lock.role is Role.FOLLOWER and b.lock.role is Role.STANDBY
        events = load_trace("queue_abandoned.ami")
        await fake.push(*events[:-1])
        await first.settle(fake, a)
        await second.settle(fake, b)
        assert a.writer.events_stored > 0 and b.writer.events_stored == 0
        assert [c["linkedid"] for c in second.runtime.snapshot()["calls"]] == [ABANDONED]
        # The follower goes; the last event (the caller's hangup) comes while nobody
        # follows: the standby heard it and replays it when it takes over.
        await first.close()
        await fake.push(events[-1])
        await wait_until(lambda: b.synced, 10.0, "the second instance takes over")
        await second.settle(fake, b)
        rows = await second.rows()
        assert [(r.server, r.linkedid) for r in rows] == [("east", ABANDONED)]
        row = rows[0]
        assert row.reconciled is False and row.hangup_cause is not None
        hangup = float(events[-1]["Timestamp"])
        assert close_to(row.ended_at, hangup)
    finally:
        await second.close()
        await first.close()


# -- the migration ----------------------------------------------------------------------
async def test_migration_0005_keys_old_calls_by_the_default_server(db_url: str) -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(db_url), "0004")
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO calls (linkedid, started_at, transfers, outcome, reconciled,"
                    " state, last_event_at, updated_at) VALUES ('1.1', :t, '[]', 'ivr', false,"
                    " '{}', :t, :t)"
                ),
                {"t": datetime.now(UTC)},
            )
        await engine.dispose()
        await upgrade_async(db_url)
        async with engine.begin() as conn:
            found = (await conn.execute(text("SELECT server, linkedid FROM calls"))).all()
            # the same linkedid on another server is another call now
            await conn.execute(
                text(
                    "INSERT INTO calls (server, linkedid, started_at, transfers, outcome,"
                    " reconciled, state, last_event_at, updated_at) VALUES ('west', '1.1', :t,"
                    " '[]', 'ivr', false, '{}', :t, :t)"
                ),
                {"t": datetime.now(UTC)},
            )
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), table_metadata()
                )
            )
        assert [tuple(r) for r in found] == [("default", "1.1")]
        assert diff == []
    finally:
        await engine.dispose()
    await asyncio.to_thread(command.downgrade, alembic_config(db_url), "0004")
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            left = (await conn.execute(text("SELECT linkedid FROM calls"))).all()
        assert [tuple(r) for r in left] == [("1.1",)]
    finally:
        await engine.dispose()
    await upgrade_async(db_url)


# -- a database outage ------------------------------------------------------------------
async def test_the_call_log_catches_up_after_a_database_outage() -> None:
    """PostgreSQL stopped for several seconds mid-call: AMI stays connected, the
    events wait in the writer's queue, and are written once the database is back."""
    with PrivatePostgres() as pg:
        await upgrade_async(pg.url)
        fakes = await start_fakes("default")
        fake = fakes["default"]
        instance = await start_instance(pg.url, fakes, ami_follow_retry=0.2, ami_follow_expiry=2)
        try:
            server = instance.runtime.servers[0]
            await wait_until(lambda: server.synced, 10.0, "following")
            events = load_trace("queue_answered.ami")
            half = len(events) // 2
            await fake.push(*events[:half])
            await instance.settle(fake, server)
            await asyncio.to_thread(pg.stop)
            await fake.push(*events[half:])
            await server.client.ping()  # read by the client, queued for the writer
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # an outage of some seconds
                await server.client.ping()
                await asyncio.sleep(0.5)
            assert server.lock.role is Role.UNSURE
            assert fake.connections_made == 1 and server.client.connected
            await asyncio.to_thread(pg.start)
            await wait_until(lambda: server.lock.role is Role.FOLLOWER, 30.0, "the lock again")
            await asyncio.wait_for(server.writer.flush(), 30.0)
            rows = await instance.rows()
            assert [(r.server, r.linkedid) for r in rows] == [("default", ANSWERED)]
            row = rows[0]
            assert row.outcome == "answered" and row.reconciled is False
            assert row.hangup_cause == 16
            assert fake.connections_made == 1  # AMI was never dropped
        finally:
            await instance.close()
            await fake.close()


async def test_a_call_that_ended_while_no_instance_followed_ends_when_last_known_up(
    sqlite_url: str,
) -> None:
    """The end-time rule: not the last event before the outage, but the follower's last
    ``alive`` record (here: its stop); ``ended_by`` is when it was found gone."""
    fakes = await start_fakes("default")
    fake = fakes["default"]
    try:
        first = await start_instance(sqlite_url, fakes, ami_alive_interval=0.1)
        try:
            await wait_until(lambda: first.runtime.servers[0].synced, 10.0, "following")
            await fake.push_trace("reconnect_before.ami")
            await first.settle(fake, first.runtime.servers[0])
            await asyncio.sleep(0.5)  # quiet: the call goes on without events
        finally:
            await first.close()
        stopped = datetime.now(UTC)
        fake.channels = []  # the call ends while nobody follows
        await asyncio.sleep(0.3)
        second = await start_instance(sqlite_url, fakes)
        try:
            await wait_until(lambda: second.runtime.servers[0].synced, 10.0, "following")
            row = (await second.rows())[0]
            async with second.core.sessionmaker() as session:
                alive_at = await session.scalar(select(AmiFollower.alive_at))
            assert row.reconciled and row.ended_at == alive_at
            assert row.ended_at.timestamp() > T_MIDCALL + 13.602 + 0.4  # not its last event
            assert row.ended_at <= stopped
            ended_by = call_view(row)["ended_by"]
            assert datetime.fromisoformat(ended_by) > stopped  # found gone after the restart
        finally:
            await second.close()
    finally:
        await fake.close()
