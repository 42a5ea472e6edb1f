"""HTTP clients cannot stop calls (issue #8 item 2), against the real ``sac-ivr serve``
(SQLite): thousands of slow-header, slow-body and idle keep-alive connections from
127.0.0.1 while fake Asterisk calls all get their numbers, /healthz answers another
client, the server closes the slow connections after their deadlines, and the log
gets a few lines with counts, not one per connection.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.fakeasterisk.agi import fake_call
from tests.serve_proc import ServeProcess, raise_fd_limit

SLOW_HEADER = 1500
SLOW_BODY = 1000
IDLE = 1000
GOOD_CALLS = 50
DEADLINE_S = 8  # header, body and keep-alive
PER_CLIENT = 200  # the default http_max_connections_per_client

HEAD = b"GET /healthz HTTP/1.1\r\nHost: sac\r\n"
POST = (
    b"POST /api/v1/session HTTP/1.1\r\nHost: sac\r\nContent-Type: application/json\r\n"
    b"Content-Length: 4000\r\n\r\n"
)
GET = b"GET /healthz HTTP/1.1\r\nHost: sac\r\n\r\n"


class Conn:
    def __init__(self, kind: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.kind, self.reader, self.writer = kind, reader, writer

    def open(self) -> bool:
        return (
            not self.reader.at_eof()
            and self.reader.exception() is None
            and not self.writer.is_closing()
        )


async def flood(port: int) -> list[Conn]:
    # Interleaved, so that the connections let in under the per-client cap are of
    # every kind.
    left = {"header": SLOW_HEADER, "body": SLOW_BODY, "idle": IDLE}
    kinds: list[str] = []
    while any(left.values()):
        for kind in left:
            if left[kind]:
                kinds.append(kind)
                left[kind] -= 1
    first = {"header": HEAD, "body": POST + b"{", "idle": GET}

    async def one(kind: str) -> Conn | None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return None
        writer.write(first[kind])
        return Conn(kind, reader, writer)

    conns: list[Conn] = []
    for start in range(0, len(kinds), 250):
        conns += [
            c for c in await asyncio.gather(*(one(k) for k in kinds[start : start + 250])) if c
        ]
    return conns


async def healthz_from(port: int, source: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: sac\r\nConnection: close\r\n\r\n")
    try:
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


async def test_an_http_flood_delays_no_call_and_is_closed_and_logged_in_a_few_lines(
    tmp_path: Path,
) -> None:
    raise_fd_limit()
    service = ServeProcess(
        tmp_path,
        env={
            "SAC_IVR_HTTP_HEADER_TIMEOUT": str(DEADLINE_S),
            "SAC_IVR_HTTP_BODY_TIMEOUT": str(DEADLINE_S),
            "SAC_IVR_HTTP_KEEPALIVE_TIMEOUT": str(DEADLINE_S),
            "SAC_IVR_ANNOUNCE_DIGIT_TIMEOUT_MS": "100",
        },
    )
    await asyncio.to_thread(service.start)
    conns: list[Conn] = []
    trickle: asyncio.Task[None] | None = None
    try:
        offset = service.log_size()
        conns = await flood(service.http_port)
        assert len(conns) >= SLOW_HEADER + SLOW_BODY + IDLE - 10  # all connected

        async def one_byte_a_second() -> None:
            while True:
                await asyncio.sleep(1.0)
                for conn in conns:
                    if conn.kind != "idle" and not conn.writer.is_closing():
                        conn.writer.write(b"X" if conn.kind == "header" else b" ")

        trickle = asyncio.create_task(one_byte_a_second())
        # Beyond the per-client cap, connections are closed as soon as accepted
        # (bounded wait: the web process accepts the 3,500 in its own time) ...
        wait_until = time.monotonic() + 20
        while sum(c.open() for c in conns) > PER_CLIENT:
            assert time.monotonic() < wait_until, f"{sum(c.open() for c in conns)} open"
            await asyncio.sleep(0.1)
        admitted = [c for c in conns if c.open()]
        # ... and the ones let in are of every kind.
        assert 0 < len(admitted) and {c.kind for c in admitted} == {"header", "body", "idle"}
        for conn in admitted:
            if conn.kind == "idle":  # answered, then left idle
                answer = await asyncio.wait_for(conn.reader.read(65536), 10)
                assert answer.startswith(b"HTTP/1.1 200"), answer[:200]

        # Calls and another client's /healthz are served during the flood.
        results, health = await asyncio.gather(
            asyncio.gather(
                *(
                    fake_call("127.0.0.1", service.agi_port, uniqueid=f"h.{i}", timeout=60)
                    for i in range(GOOD_CALLS)
                )
            ),
            healthz_from(service.http_port, "127.0.0.2"),
        )
        numbers = {r.variables.get("SAC_PROTOCOL") for r in results}
        assert None not in numbers and len(numbers) == GOOD_CALLS
        assert all(r.variables["SAC_RESULT"] == "OK" for r in results)
        assert health.startswith(b"HTTP/1.1 200"), health[:200]

        # The slow and idle connections let in are closed by the server once their
        # deadline passed.
        closed_by = time.monotonic() + DEADLINE_S + 20
        while any(c.open() for c in admitted):
            assert time.monotonic() < closed_by, {c.kind for c in admitted if c.open()}
            await asyncio.sleep(0.2)
    finally:
        if trickle is not None:
            trickle.cancel()
        for conn in conns:
            conn.writer.close()
        code = await asyncio.to_thread(service.stop)
    assert code == 0
    # The log: a few lines, with counts (written at the latest at exit), not one per
    # connection. 3,500 connections, ~3,300 of them refused.
    lines = service.log_text()[offset:].splitlines()
    http_lines = [line for line in lines if "HTTP connection" in line or "aiohttp" in line]
    assert 1 <= len(http_lines) <= 12, http_lines
    assert any("repeated" in line for line in http_lines), http_lines
    assert len(lines) < 250, f"{len(lines)} lines"
