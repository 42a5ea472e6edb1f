"""PostgreSQL failover under load: a primary and a streaming standby on this machine.

The test starts a private primary and a synchronous standby (tests/private_postgres.py:
initdb, pg_basebackup -R, other ports), runs the real ``sac-ivr serve`` on the
multi-host URL, and keeps 20 fake FastAGI callers calling in a loop. Then the primary
dies (``pg_ctl stop -m immediate``) and the standby is promoted:

- issuing resumes on the new primary by itself, and stays there;
- every number a caller was given is in the new primary exactly once (synchronous
  replication: nothing spoken is lost), and no two callers got the same one;
- the calls caught in the switch end cleanly, ``SAC_RESULT=ERROR`` without a number,
  within the call's bound; none hangs.

Also with the primary frozen instead of stopped (its connections stay open, nothing
answers). The next test fences the old primary read-only instead of stopping it (its pooled
connections stay open but every write is refused): the issuer must drop them and go
to the promoted standby, not keep failing on them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from sac_ivr.db.engine import create_engine
from tests.conftest import PG_ADMIN_URL, postgres_template
from tests.fakeasterisk.agi import fake_call
from tests.private_postgres import PrivatePostgres, multi_host_url, primary_with_standby
from tests.serve_proc import ServeProcess

CALLERS = 20
# A fake call is answered at once, so a whole call (issue, read the number) takes
# well under a second; ISSUE_TIMEOUT_S (4 s) bounds the wait for a number. Past this
# bound a call counts as hung.
CALL_BOUND_S = 10.0
# Calls with a number before the fault, and after it on the new primary.
CALLS_BEFORE = 60
CALLS_AFTER = 60
# Bounds on the waits (not timing assertions): the whole test stays near a minute.
PHASE_TIMEOUT_S = 30.0
# The journal's replay to the new primary (tries every 0.5 s once it answers).
REPLAY_BOUND_S = 30.0


@dataclass
class Outcome:
    caller: int
    started: float
    ended: float
    result: str | None  # SAC_RESULT
    number: str | None  # SAC_PROTOCOL
    spoken: list[str]  # the number as the caller heard it, digit by digit
    hung: bool = False


class Load:
    """CALLERS fake callers, each calling again as soon as its call ends."""

    def __init__(self, port: int, prefix: str) -> None:
        self.port = port
        self.prefix = prefix
        self.outcomes: list[Outcome] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[list[None]] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(
            asyncio.gather(*(self._caller(i) for i in range(CALLERS)))
        )

    async def _caller(self, index: int) -> None:
        serial = 0
        while not self._stop.is_set():
            serial += 1
            started = time.monotonic()
            try:
                call = await fake_call(
                    "127.0.0.1",
                    self.port,
                    uniqueid=f"{self.prefix}.{index}.{serial}",
                    timeout=CALL_BOUND_S,
                )
            except TimeoutError:
                self.outcomes.append(
                    Outcome(index, started, time.monotonic(), None, None, [], True)
                )
                continue
            self.outcomes.append(
                Outcome(
                    index,
                    started,
                    time.monotonic(),
                    call.variables.get("SAC_RESULT"),
                    call.variables.get("SAC_PROTOCOL"),
                    call.digits_between(),
                )
            )

    def issued(self, after: float = 0.0) -> list[Outcome]:
        return [o for o in self.outcomes if o.result == "OK" and o.started >= after]

    async def wait_issued(self, count: int, after: float = 0.0) -> None:
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while len(self.issued(after)) < count:
            if time.monotonic() > deadline:
                results = [o.result for o in self.outcomes if o.started >= after]
                raise AssertionError(
                    f"{len(self.issued(after))} of {count} calls got a number in "
                    f"{PHASE_TIMEOUT_S} s; outcomes since: {results[-40:]}"
                )
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        async with asyncio.timeout(CALL_BOUND_S + 5):
            await self._task


def serve(url: str, work_dir: Path) -> ServeProcess:
    return ServeProcess(
        work_dir, env={"SAC_IVR_DATABASE_URL": url, "SAC_IVR_LOG_LEVEL": "WARNING"}
    ).start()


async def stored_counts(server: PrivatePostgres, numbers: list[str]) -> dict[str, int]:
    connection = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres")
    try:
        rows = await connection.fetch(
            "SELECT number, count(*) AS n FROM protocols WHERE number = ANY($1) GROUP BY number",
            numbers,
        )
    finally:
        await connection.close()
    return {row["number"]: row["n"] for row in rows}


async def is_primary(server: PrivatePostgres) -> bool:
    connection = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres")
    try:
        return not await connection.fetchval("SELECT pg_is_in_recovery()")
    finally:
        await connection.close()


def assert_clean(load: Load) -> None:
    """Every call ended within its bound, either with its number read to the end or
    with SAC_RESULT=ERROR and no number (the dialplan's 'an attendant will give it')."""
    assert load.outcomes
    hung = [o for o in load.outcomes if o.hung]
    assert not hung, f"{len(hung)} call(s) hung past {CALL_BOUND_S} s"
    for outcome in load.outcomes:
        assert outcome.result in ("OK", "ERROR"), outcome
        if outcome.result == "OK":
            assert outcome.number and outcome.spoken == [outcome.number], outcome
        else:
            assert outcome.number is None, outcome


async def assert_all_stored_once(load: Load, new_primary: PrivatePostgres) -> None:
    """Every spoken number on the new primary exactly once. Numbers the instance gave
    from its outage reserve while no primary answered reach the new primary with the
    journal's replay, which may still be under way: waited for, within a bound."""
    numbers = [o.number for o in load.outcomes if o.number is not None]
    assert len(numbers) == len(set(numbers)), "two callers were given the same number"
    deadline = time.monotonic() + REPLAY_BOUND_S
    while True:
        counts = await stored_counts(new_primary, numbers)
        missing = [n for n in numbers if n not in counts]
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert not missing, f"{len(missing)} spoken number(s) lost in the failover: {missing[:5]}"
    assert set(counts.values()) == {1}


async def wait_healthy(http_port: int) -> dict[str, object]:
    """The web process (its own engine and pool) answers /healthz with the database
    ok again; returns the last answer."""
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"http://127.0.0.1:{http_port}/healthz") as response:
                body = await response.json()
                if response.status == 200 or time.monotonic() > deadline:
                    return {**body, "http_status": response.status}
            await asyncio.sleep(0.1)


def assert_resumed_for_good(load: Load, promoted_at: float) -> None:
    """Once a call got a number from the new primary, no later call failed: the
    issuer does not flap between the servers."""
    first_ok_end = min(o.ended for o in load.issued(promoted_at))
    late_errors = [o for o in load.outcomes if o.started > first_ok_end and o.result != "OK"]
    assert not late_errors, late_errors[:5]


@pytest.mark.parametrize("fault", ["crash", "freeze", "freeze-in-commit"])
async def test_primary_lost_and_standby_promoted_under_load(fault: str, tmp_path: Path) -> None:
    """crash: ``pg_ctl stop -m immediate``, its connections reset at once. freeze:
    SIGSTOP on every process of the primary, its connections stay open and nothing
    answers (a hung server, or a host cut off without a reset): only deadlines (the
    pool's ping, the issuer's batch, each host's connect share) get past it.
    freeze-in-commit: the standby is frozen first, so that the batch in flight waits
    for its synchronous commit, and then the primary: that batch hangs on a silent
    server, which only the issuer's batch deadline ends."""
    async with primary_with_standby() as (primary, standby):
        server: ServeProcess | None = None
        try:
            server = await asyncio.to_thread(
                serve, multi_host_url(primary, standby), tmp_path / "s"
            )
            load = Load(server.agi_port, fault)
            load.start()
            try:
                await load.wait_issued(CALLS_BEFORE)
                if fault == "freeze-in-commit":
                    standby.freeze()
                    await asyncio.sleep(0.3)  # a batch is now waiting for the standby's flush
                    primary.freeze()
                    standby.thaw()
                elif fault == "freeze":
                    primary.freeze()
                else:
                    await asyncio.to_thread(primary.stop, "immediate")
                await asyncio.sleep(0.5)  # calls go on against a dead primary and a standby
                await asyncio.to_thread(standby.promote)
                promoted_at = time.monotonic()
                await load.wait_issued(CALLS_AFTER, after=promoted_at)
            finally:
                await load.stop()
            assert await is_primary(standby)
            assert_clean(load)
            await assert_all_stored_once(load, standby)
            assert_resumed_for_good(load, promoted_at)
            health = await wait_healthy(server.http_port)
            assert health["http_status"] == 200 and health["database"] == "ok", health
            assert server.proc is not None and server.proc.poll() is None
        finally:
            if server is not None:
                await asyncio.to_thread(server.stop, 15)


async def test_old_primary_fenced_read_only_does_not_wedge_the_issuer(tmp_path: Path) -> None:
    """The old primary stays up but refuses writes (fenced with
    default_transaction_read_only, as failover tools do): its pooled connections
    still answer pings, so only the 'read-only transaction' error tells they are on
    the wrong server."""
    async with primary_with_standby() as (primary, standby):
        server: ServeProcess | None = None
        try:
            # The standby first: migrations and writes must pass it over.
            server = await asyncio.to_thread(
                serve, multi_host_url(standby, primary), tmp_path / "s"
            )
            load = Load(server.agi_port, "fence")
            load.start()
            try:
                await load.wait_issued(CALLS_BEFORE)
                await asyncio.to_thread(
                    primary.psql, "ALTER SYSTEM SET default_transaction_read_only = on"
                )
                await asyncio.to_thread(primary.psql, "SELECT pg_reload_conf()")
                await asyncio.sleep(0.5)
                await asyncio.to_thread(standby.promote)
                promoted_at = time.monotonic()
                await load.wait_issued(CALLS_AFTER, after=promoted_at)
            finally:
                await load.stop()
            assert_clean(load)
            await assert_all_stored_once(load, standby)
            assert_resumed_for_good(load, promoted_at)
            # The numbers issued after the switch went to the new primary only.
            after = [o.number for o in load.issued(promoted_at) if o.number]
            assert await stored_counts(primary, after) == {}
        finally:
            if server is not None:
                await asyncio.to_thread(server.stop, 15)


async def test_a_silent_first_host_does_not_use_up_the_connect_timeout() -> None:
    """A host that takes the TCP connection and never answers (a frozen server, or
    one cut off behind a firewall that lets the handshake through) is given its share
    of the connect timeout, then the next host is tried; and the host that accepted
    goes first from then on. asyncpg alone spends the whole timeout on the first host
    and never tries the second."""
    await asyncio.to_thread(postgres_template)  # the shared server: skips (or fails) without
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # kept open, never answered

    silent_server = await asyncio.start_server(silent, "127.0.0.1", 0)
    silent_port = silent_server.sockets[0].getsockname()[1]
    real = make_url(PG_ADMIN_URL)
    url = real.set(host=None, port=None).update_query_pairs(
        [("host", f"127.0.0.1:{silent_port}"), ("host", f"{real.host}:{real.port or 5432}")]
    )
    engine = create_engine(url.render_as_string(hide_password=False))
    try:
        for _ in range(3):
            async with engine.connect() as connection:
                assert await connection.scalar(text("SELECT inet_server_port()")) == (
                    real.port or 5432
                )
            await engine.dispose()  # the next connect opens a new connection
        assert len(accepted) == 1  # tried once; then the good host went first
    finally:
        await engine.dispose()
        for writer in accepted:
            writer.close()
        silent_server.close()
        await silent_server.wait_closed()


async def test_one_host_in_the_query_string_is_a_plain_url() -> None:
    """``?host=H:P`` once: one host, no host list (its value is then a string)."""
    await asyncio.to_thread(postgres_template)  # the shared server: skips (or fails) without
    real = make_url(PG_ADMIN_URL)
    url = real.set(host=None, port=None).update_query_pairs(
        [("host", f"{real.host}:{real.port or 5432}")]
    )
    engine = create_engine(url.render_as_string(hide_password=False))
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()
