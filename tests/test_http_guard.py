"""The HTTP server's deadlines and connection caps (sac_ivr/http/guard.py), one at a
time, on real sockets in this process: a small app behind the service's own error
middleware, served by GuardedAppRunner.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from sac_ivr.http.errors import error_middleware
from sac_ivr.http.guard import GuardedAppRunner, HttpLimits
from sac_ivr.runner import bind_listener


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"got": await request.json()})


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.fixture
async def serve() -> AsyncIterator:
    runners: list[GuardedAppRunner] = []

    async def start(**limits: float) -> tuple[int, GuardedAppRunner]:
        app = web.Application(middlewares=[error_middleware])
        app.router.add_post("/echo", echo)
        app.router.add_get("/ok", ok)
        runner = GuardedAppRunner(app, HttpLimits(**limits), access_log=None)
        await runner.setup()
        sock = bind_listener("127.0.0.1", 0)
        await web.SockSite(runner, sock).start()
        runners.append(runner)
        return sock.getsockname()[1], runner

    yield start
    for runner in runners:
        await runner.cleanup()


async def connect(port: int, source: str = "127.0.0.1"):
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def read_all(reader: asyncio.StreamReader, timeout: float = 10.0) -> bytes:
    """Everything until the server closes (a reset counts as a close)."""
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except ConnectionResetError:
        return b""


async def test_headers_not_complete_in_time_close_the_connection(serve) -> None:
    port, runner = await serve(header_timeout=0.5)
    reader, writer = await connect(port)
    writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n")  # ... and the blank line never comes
    assert await read_all(reader) == b""
    assert runner.guard.timed_out == 1
    writer.close()
    # A client that sends its request in time is served.
    reader, writer = await connect(port)
    writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await read_all(reader)).startswith(b"HTTP/1.1 200")
    writer.close()


async def test_a_silent_connection_is_closed_after_the_header_deadline(serve) -> None:
    port, _ = await serve(header_timeout=0.5, keepalive_timeout=600)
    reader, writer = await connect(port)
    assert await read_all(reader) == b""  # connected, said nothing
    writer.close()


async def test_an_idle_keepalive_connection_is_closed(serve) -> None:
    port, _ = await serve(keepalive_timeout=0.5, header_timeout=600)
    reader, writer = await connect(port)
    writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await read_all(reader)  # the answer, then the close once idle
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"ok": true}')
    writer.close()


async def test_a_body_not_complete_in_time_gets_408_and_the_connection_closes(serve) -> None:
    port, runner = await serve(body_timeout=0.5)
    reader, writer = await connect(port)
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    answer = await read_all(reader)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert runner.guard.timed_out == 1
    writer.close()
    # A whole body in time is read.
    reader, writer = await connect(port)
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 7\r\nConnection: close\r\n\r\n[1,2,3]"
    )
    assert (await read_all(reader)).endswith(b'{"got": [1, 2, 3]}')
    writer.close()


async def test_connections_beyond_the_caps_are_closed_at_once(serve) -> None:
    port, runner = await serve(max_connections=5, max_per_client=3, header_timeout=600)
    mine = [await connect(port, "127.0.0.3") for _ in range(5)]
    await asyncio.sleep(0.3)
    refused = [r for r, _ in mine if r.at_eof() or r.exception() is not None]
    assert len(refused) == 2  # three let in from 127.0.0.3
    others = [await connect(port, "127.0.0.4") for _ in range(3)]
    await asyncio.sleep(0.3)
    closed = [r for r, _ in others if r.at_eof() or r.exception() is not None]
    assert len(closed) == 1  # five in all
    assert runner.guard.refused == 3
    # Closing one makes room again.
    mine[0][1].close()
    await asyncio.sleep(0.3)
    reader, writer = await connect(port, "127.0.0.4")
    writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await read_all(reader)).startswith(b"HTTP/1.1 200")
    for _, w in [*mine, *others, (reader, writer)]:
        w.close()


async def test_a_malformed_request_is_logged_by_its_kind_only(
    serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port, _ = await serve()
    reader, writer = await connect(port)
    writer.write(b"GET /?phone=11987654321 HTTP/1.1\r\nHost: x\r\nBad Header 1198\r\n\r\n")
    assert (await read_all(reader)).split(b"\r\n")[0].endswith(b" 400 Bad Request")
    writer.close()
    assert "bad HTTP request from 127.0.0.1" in caplog.text
    assert "1198" not in caplog.text  # nothing the client sent is logged
    assert "Traceback" not in caplog.text
