"""Two ``sac-ivr serve`` on one PostgreSQL database follow the real Asterisk's AMI; the
one writing the call log is killed (SIGKILL) while SIPp callers are in the IVR and
the queue (issue #10 item 3).

The first instance (AGI on a port the dialplan does not use, so the callers never
depend on it) takes the call log's lock; the second serves the dialplan's FastAGI and
waits. Four callers hang up 3, 9, 12 and 15 s after dialling; the follower is killed
5.5 s in. The second takes over (its wait is bounded, not timed) and then every
call has exactly one row, closed at the time of its last Hangup as Asterisk
stamped it (the test's own AMI connection records the events): the hangups heard
while the dead instance could not write them are replayed by the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.asterisk.ami import AmiClient
from tests.asterisk.e2e_api import wait_until
from tests.asterisk.instance import AsteriskInstance, free_port
from tests.asterisk.service import SacIvrService
from tests.asterisk.sipp import SipCall
from tests.asterisk.stale import hang_up_callers
from tests.conftest import _pg_execute, new_database

HANGUP_AFTER = (3.0, 9.0, 12.0, 15.0)
KILL_AT = 5.5


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    url, name = new_database("postgres", tmp_path)
    yield url
    asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _query(url: str, sql: str) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return [dict(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(run())


def _holder(url: str) -> str | None:
    rows = _query(url, "SELECT holder FROM ami_followers")
    return rows[0]["holder"] if rows else None


def test_follower_killed_mid_call_every_call_one_row_with_its_real_end(
    asterisk: AsteriskInstance,
    ami: AmiClient,
    sip_call: Any,
    sipp_available: None,
    postgres_url: str,
) -> None:
    env = {
        "SAC_IVR_DATABASE_URL": postgres_url,
        "SAC_IVR_AMI_FOLLOW_RETRY": "0.5",
        "SAC_IVR_AMI_ALIVE_INTERVAL": "0.5",
    }
    hang_up_callers(ami)
    follower = SacIvrService(asterisk, name="sac-ivr-ami-a", agi_port=free_port(), env=env)
    standby = SacIvrService(asterisk, name="sac-ivr-ami-b", env=env)
    calls: list[SipCall] = []
    try:
        follower.start()
        wait_until(
            lambda: _holder(postgres_url) is not None, "the first instance follows", timeout=30
        )
        first_holder = _holder(postgres_url)
        standby.start()
        wait_until(lambda: "AMI connected" in standby.log_text(), "the second on AMI", timeout=30)
        assert _holder(postgres_url) == first_holder

        started = time.monotonic()
        for seconds in HANGUP_AFTER:
            calls.append(sip_call(hangup_after=seconds).start())
        time.sleep(max(0.0, KILL_AT - (time.monotonic() - started)))
        follower.kill()  # SIGKILL; its children die with it (PR_SET_PDEATHSIG)
        wait_until(
            lambda: _holder(postgres_url) not in (None, first_holder),
            f"takeover:\n{standby.log_text()[-3000:]}",
            timeout=30,
        )
        assert "this instance now writes its call log" in standby.log_text()
        for call in calls:
            call.wait(60)
        numbers = [c.caller_num for c in calls]
        rows: list[dict[str, Any]] = []

        def all_closed() -> bool:
            rows[:] = _query(
                postgres_url,
                "SELECT server, linkedid, caller_number, ended_at, reconciled FROM calls",
            )
            mine = [r for r in rows if r["caller_number"] in numbers]
            return len(mine) >= len(numbers) and all(r["ended_at"] for r in mine)

        wait_until(all_closed, "every call closed", timeout=30)
        for number in numbers:
            found = [r for r in rows if r["caller_number"] == number]
            assert len(found) == 1, (number, found)
            row = found[0]
            assert row["server"] == "default" and row["reconciled"] is False, row
            hangups = ami.find_events(
                lambda e, lid=row["linkedid"]: (
                    e.get("Event") == "Hangup" and e.get("Linkedid") == lid
                )
            )
            assert hangups, row
            real_end = max(float(e["Timestamp"]) for e in hangups)
            assert abs(row["ended_at"].timestamp() - real_end) < 0.001, (row, real_end)
    finally:
        for call in calls:
            call.stop()
        hang_up_callers(ami)
        follower.stop()
        standby.stop()
