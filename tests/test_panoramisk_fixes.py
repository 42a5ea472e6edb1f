"""Each panoramisk 1.4 FastAGI failure (README "panoramisk") is contained.

1 half-open / EOF header read, 2 sync routes, 3 in-band HANGUP drift,
4 command timeouts and 520 usage errors, 6 loop-less construction.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from sac_ivr.asterisk.fastagi import (
    MAX_HEADER_BYTES,
    AgiCall,
    AgiCommandError,
    AgiHangup,
    FastAgiServer,
)
from sac_ivr.runner import RunningService
from tests.fakeasterisk.agi import agi_headers, fake_call


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed_by_server(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Read until the server closes; returns what it sent."""
    return await asyncio.wait_for(reader.read(), timeout)


async def test_fix1_peer_closing_before_headers_does_not_freeze_the_loop(
    running_sqlite: RunningService,
) -> None:
    port = running_sqlite.agi_port
    # What a port scan or a TCP health check does: connect, maybe a few bytes, close.
    for payload in (b"", b"agi_network: yes\n", b"agi_network_scr"):
        _, writer = await _open(port)
        writer.write(payload)
        await writer.drain()
        writer.close()
    ticks = 0

    async def count_ticks() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_ticks())
    await asyncio.sleep(0.3)
    counter.cancel()
    # panoramisk's loop spins on b'' without yielding: 0 ticks. Ours keeps serving.
    assert ticks > 100
    result = await fake_call("127.0.0.1", port)
    assert result.variables["SAC_RESULT"] == "OK"


async def test_fix1_bad_and_silent_connections_never_stall_real_calls(
    running_sqlite: RunningService,
) -> None:
    port = running_sqlite.agi_port
    silent = [await _open(port) for _ in range(150)]  # connect and never say anything
    partial = []
    for _ in range(50):  # half a header block, then silence
        reader, writer = await _open(port)
        writer.write(agi_headers("protocol")[:200])
        await writer.drain()
        partial.append((reader, writer))
    garbage = []
    for i in range(50):  # not FastAGI at all
        reader, writer = await _open(port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" if i % 2 else b"\x16\x03\x01\x02\x00")
        await writer.drain()
        garbage.append((reader, writer))
    # While all of those hang around, real calls are served.
    results = await asyncio.gather(
        *(fake_call("127.0.0.1", port, uniqueid=f"g.{i}", timeout=5.0) for i in range(20))
    )
    assert len({r.variables["SAC_PROTOCOL"] for r in results}) == 20
    assert all(r.digits_between() == [r.variables["SAC_PROTOCOL"]] for r in results)
    # The garbage was answered with a close (at once: it does not start with "agi_"),
    # not with AGI commands.
    for reader, _ in garbage:
        assert await _closed_by_server(reader, timeout=1.0) == b""
    for _, writer in silent + partial + garbage:
        writer.close()


async def test_fix1_header_timeout_closes_a_silent_peer(sqlite_url: str) -> None:
    from sac_ivr.runner import start_service
    from tests.conftest import make_settings

    running = await start_service(make_settings(sqlite_url, agi_header_timeout="0.2"), False)
    try:
        reader, writer = await _open(running.agi_port)
        writer.write(b"agi_network: yes\n")
        await writer.drain()
        assert await _closed_by_server(reader, timeout=3.0) == b""
        writer.close()
    finally:
        await running.stop(drain_seconds=1.0)


async def test_fix1_oversized_header_block_is_refused(running_sqlite: RunningService) -> None:
    reader, writer = await _open(running_sqlite.agi_port)
    line = b"agi_arg_%d: " + b"x" * 1000 + b"\n"
    blob = b"".join(line % i for i in range(1, MAX_HEADER_BYTES // 1000 + 5))
    writer.write(b"agi_network: yes\nagi_network_script: protocol\n" + blob + b"\n")
    await writer.drain()
    assert await _closed_by_server(reader) == b""
    writer.close()


async def test_fix1_overlong_single_line_is_refused(running_sqlite: RunningService) -> None:
    reader, writer = await _open(running_sqlite.agi_port)
    writer.write(b"agi_network_script: " + b"p" * 100_000 + b"\n\n")
    await writer.drain()
    assert await _closed_by_server(reader) == b""
    writer.close()


async def test_fix2_sync_route_refused_at_registration() -> None:
    server = FastAgiServer()

    def sync_route(call: AgiCall) -> None:  # what panoramisk would wrap in asyncio.coroutine
        pass

    with pytest.raises(TypeError, match="async"):
        server.add_route("sync", sync_route)  # type: ignore[arg-type]


async def _call_pair() -> tuple[AgiCall, asyncio.StreamReader, asyncio.StreamWriter]:
    """An AgiCall on one end of a socket pair; the test plays Asterisk on the other."""
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    peer_reader, peer_writer = await asyncio.open_connection(sock=theirs)
    call = AgiCall(FastAgiServer(), {"agi_uniqueid": "1.1"}, reader, writer, command_timeout=2)
    return call, peer_reader, peer_writer


async def test_fix3_inband_hangup_does_not_shift_later_replies() -> None:
    call, peer_reader, peer_writer = await _call_pair()
    # Asterisk (AGISIGHUP=yes): "HANGUP" then the command's own result.
    peer_writer.write(b"HANGUP\n200 result=-1 endpos=1234\n")
    await peer_writer.drain()
    with pytest.raises(AgiHangup):
        await call.stream_file("sac/protocol-intro")
    assert call.hung_up
    # Nothing else is sent after a hangup: no reply can be taken for the wrong command.
    with pytest.raises(AgiHangup):
        await call.set_variable("X", "1")
    sent = await peer_reader.readline()
    assert sent == b'STREAM FILE sac/protocol-intro ""\n'
    peer_writer.close()
    await asyncio.sleep(0.01)
    assert await peer_reader.read() == b""  # no second command on the wire
    call.writer.close()


async def test_fix3_result_minus_one_and_511_mean_hangup() -> None:
    call, _, peer_writer = await _call_pair()
    peer_writer.write(b"511 Command Not Permitted on a dead channel or intercept routine\n")
    await peer_writer.drain()
    with pytest.raises(AgiHangup):
        await call.set_variable("X", "1")
    call.writer.close()
    peer_writer.close()


async def test_fix4_command_times_out_instead_of_waiting_forever() -> None:
    call, _, peer_writer = await _call_pair()
    call.command_timeout = 0.1
    with pytest.raises(TimeoutError):
        await call.command('VERBOSE "x" 1')  # the peer never answers
    call.writer.close()
    peer_writer.close()


async def test_fix4_usage_error_is_read_to_its_last_line() -> None:
    call, _, peer_writer = await _call_pair()
    peer_writer.write(
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b" Usage: STREAM FILE <filename> <escape digits>\n"
        b"520 End of proper usage.\n"
        b"200 result=1\n"
    )
    await peer_writer.drain()
    with pytest.raises(AgiCommandError, match="End of proper usage"):
        await call.command("STREAM FILE")
    # The next command gets its own reply, not a leftover usage line.
    result = await call.command('SET VARIABLE A "1"')
    assert result.result == "1"
    call.writer.close()
    peer_writer.close()


def test_fix6_server_is_only_built_inside_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        FastAgiServer()


async def test_get_variable_reads_values_with_spaces_and_parentheses() -> None:
    call, _, peer_writer = await _call_pair()
    peer_writer.write(b"200 result=1 (Maria (SP) Silva)\n200 result=0\n")
    await peer_writer.drain()
    assert await call.get_variable("CALLERID(name)") == "Maria (SP) Silva"
    assert await call.get_variable("UNSET") is None
    call.writer.close()
    peer_writer.close()
