"""FastAGI peers that say nothing hold no call slot; peers outside agi_allowed_peers
are closed at accept (issue #8 item 4). Against the real ``sac-ivr serve`` (SQLite).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakeasterisk.agi import agi_headers, fake_call
from tests.serve_proc import ServeProcess, raise_fd_limit

FLOOD_EACH = 1000  # half-open, slow and garbage: 3,000 connections
GOOD_CALLS = 50
# Long enough that no flood connection times out while the test runs: a good call
# that waited for one would wait this long.
HEADER_TIMEOUT_S = 40


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    raise_fd_limit()
    proc = ServeProcess(
        tmp_path_factory.mktemp("agi-flood"),
        env={
            "SAC_IVR_AGI_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S),
            "SAC_IVR_AGI_ALLOWED_PEERS": "127.0.0.1/32",
            "SAC_IVR_ANNOUNCE_DIGIT_TIMEOUT_MS": "100",
        },
    ).start()
    yield proc
    proc.stop()


def protocol_count(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM protocols").fetchone()[0])


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_many(port: int, count: int, first: bytes = b"") -> list[Conn]:
    async def one() -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if first:
            writer.write(first)
        return reader, writer

    conns: list[Conn] = []
    for start in range(0, count, 250):
        conns += await asyncio.gather(*(one() for _ in range(min(250, count - start))))
    return conns


def still_open(conn: Conn) -> bool:
    reader, writer = conn
    return not reader.at_eof() and reader.exception() is None and not writer.is_closing()


async def test_good_calls_are_served_while_3000_silent_slow_and_garbage_peers_are_open(
    service: ServeProcess,
) -> None:
    port = service.agi_port
    before = protocol_count(service.database_path)
    offset = service.log_size()
    half_open = await open_many(port, FLOOD_EACH)
    header = agi_headers("protocol", port=port)
    slow = await open_many(port, FLOOD_EACH, first=header[:1])
    garbage = await open_many(port, FLOOD_EACH, first=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

    async def one_byte_a_second() -> None:
        for index in range(1, len(header)):
            await asyncio.sleep(1.0)
            for _, writer in slow:
                if not writer.is_closing():
                    writer.write(header[index : index + 1])

    trickle = asyncio.create_task(one_byte_a_second())
    try:
        results = await asyncio.gather(
            *(
                fake_call("127.0.0.1", port, uniqueid=f"good.{i}", timeout=HEADER_TIMEOUT_S / 2)
                for i in range(GOOD_CALLS)
            )
        )
        # Every good call got its number and heard it ...
        numbers = {r.variables.get("SAC_PROTOCOL") for r in results}
        assert None not in numbers and len(numbers) == GOOD_CALLS
        assert all(r.variables["SAC_RESULT"] == "OK" for r in results)
        assert all(r.digits_between()[0] == r.variables["SAC_PROTOCOL"] for r in results)
        # ... while every silent and slow peer was still connected: no good call
        # waited for one of them to time out.
        await asyncio.sleep(0.2)
        assert sum(still_open(c) for c in half_open) == FLOOD_EACH
        assert sum(still_open(c) for c in slow) == FLOOD_EACH
        # Garbage is refused at once (it does not start with "agi_").
        for reader, _ in garbage:
            assert await asyncio.wait_for(reader.read(), 10) == b""
    finally:
        trickle.cancel()
        for _, writer in half_open + slow + garbage:
            writer.close()
    # One protocol per good call; the flood made none.
    assert protocol_count(service.database_path) == before + GOOD_CALLS
    # 1,000 garbage connections dropped: one line (the rest is counted), not 1,000.
    dropped = [
        line
        for line in service.log_text()[offset:].splitlines()
        if "FastAGI connection from" in line
    ]
    assert 1 <= len(dropped) <= 3, dropped[:10]


async def test_a_peer_outside_agi_allowed_peers_is_closed_and_gets_no_number(
    service: ServeProcess,
) -> None:
    port = service.agi_port
    before = protocol_count(service.database_path)
    offset = service.log_size()
    # 127.0.0.2 is loopback too, but only 127.0.0.1/32 is allowed here.
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
    writer.write(agi_headers("protocol", port=port, uniqueid="outsider.1"))
    try:
        await writer.drain()
    except ConnectionError:
        pass  # closed so fast that the header did not even go out
    try:
        sent = await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        sent = b""
    writer.close()
    assert sent == b""  # not a single AGI command
    assert protocol_count(service.database_path) == before
    await service.await_log("not in agi_allowed_peers", after=offset, timeout=10)
    # From an allowed address the same call works.
    result = await fake_call("127.0.0.1", port, uniqueid="insider.1")
    assert result.variables["SAC_RESULT"] == "OK"
    assert protocol_count(service.database_path) == before + 1


async def test_past_max_pending_the_oldest_silent_connection_makes_room() -> None:
    """Connections still sending their header never use up the file limit: the oldest
    is closed when a new one would pass ``max_pending``."""
    from sac_ivr.asterisk.fastagi import FastAgiServer

    server = FastAgiServer(header_timeout=30, max_pending=3)

    async def hello(call) -> None:  # type: ignore[no-untyped-def]
        await call.set_variable("SAC_RESULT", "OK")

    server.add_route("protocol", hello)
    port = (await server.start("127.0.0.1", 0)).sockets[0].getsockname()[1]
    try:
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        await asyncio.sleep(0.3)
        assert [still_open(c) for c in silent] == [False, False, True, True, True]
        assert server.pending_headers == 3
        # A real call is the newest: it is served (and pushes out the next oldest).
        result = await fake_call("127.0.0.1", port, uniqueid="p.1")
        assert result.variables["SAC_RESULT"] == "OK"
        assert [still_open(c) for c in silent] == [False, False, False, True, True]
        for _, writer in silent:
            writer.close()
    finally:
        await server.close()
