"""``sac-ivr serve`` as a supervisor with a call process and a web process (issue #8
item 2), run for real as a subprocess on SQLite: restarts, kill -9, the drain on
SIGTERM, and what the call path hands to the web process (the opening SMS's wake-up)
across the split.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fakeasterisk.agi import FakeCallResult, FakeCallScript, _answer, agi_headers, fake_call
from tests.notify_fakes import start_sms_provider, stop_sms_provider, wait_until
from tests.serve_proc import ServeProcess, pid_alive

LANDLINE = "1133334444"  # no SMS offer: the call's prompts are the number's only
MOBILE = "11987654321"


def healthz(port: int) -> int:
    """GET /healthz (blocking; call it in a thread from async code)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


async def start(tmp_path: Path, **env: str) -> ServeProcess:
    return await asyncio.to_thread(ServeProcess(tmp_path, env=env).start)


async def test_a_killed_call_process_is_restarted_and_the_next_call_gets_a_number(
    tmp_path: Path,
) -> None:
    service = await start(tmp_path)
    try:
        first = await fake_call("127.0.0.1", service.agi_port, uniqueid="k.1")
        assert first.variables["SAC_RESULT"] == "OK"
        before = service.children()
        assert set(before) == {"call", "web"}, service.log_text()[-2000:]
        offset = service.log_size()
        os.kill(before["call"], signal.SIGKILL)
        # Placed at once: the supervisor keeps the listening socket, so the call waits
        # in the kernel's accept queue until the new call process takes it.
        second = await fake_call("127.0.0.1", service.agi_port, uniqueid="k.2", timeout=60)
        assert second.variables["SAC_RESULT"] == "OK"
        assert second.variables["SAC_PROTOCOL"] != first.variables["SAC_PROTOCOL"]
        assert second.digits_between() == [second.variables["SAC_PROTOCOL"]]
        after = service.children()
        assert after["call"] != before["call"]
        assert after["web"] == before["web"]  # the web process never noticed
        log = service.log_text()[offset:]
        assert "call process" in log and "died (killed by SIGKILL)" in log
        assert await asyncio.to_thread(healthz, service.http_port) == 200
    finally:
        service.stop()


async def test_killing_the_supervisor_leaves_no_process_behind(tmp_path: Path) -> None:
    service = await start(tmp_path)
    try:
        children = service.children()
        assert set(children) == {"call", "web"}
        service.kill()  # SIGKILL: no chance to stop anything itself
        deadline = time.monotonic() + 15
        while any(pid_alive(pid) for pid in children.values()):
            assert time.monotonic() < deadline, f"still running: {children}"
            await asyncio.sleep(0.05)
        for port in (service.agi_port, service.http_port):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        service.kill()


async def slow_call(port: int, prompt_s: float, playing: asyncio.Event) -> FakeCallResult:
    """A FastAGI session in which every prompt plays ``prompt_s``; ``playing`` is set
    at the first prompt."""
    result = FakeCallResult(linkedid="d.1")
    script = FakeCallScript()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(agi_headers("protocol", port=port, uniqueid="d.1", callerid=LANDLINE))
    streams = waits = 0
    try:
        async with asyncio.timeout(60):
            while raw := await reader.readline():
                command = raw.decode().rstrip("\n")
                result.commands.append(command)
                reply = _answer(command, script, result, streams, waits)
                if command.startswith("STREAM FILE"):
                    playing.set()
                    streams += 1
                    await asyncio.sleep(prompt_s)
                waits += command.startswith("WAIT FOR DIGIT")
                writer.write(reply.encode() + b"\n")
                await writer.drain()
            result.closed_by_server = True
    finally:
        writer.close()
    return result


async def test_sigterm_lets_the_call_in_progress_finish_then_stops_both_processes(
    tmp_path: Path,
) -> None:
    service = await start(tmp_path, SAC_IVR_ANNOUNCE_DIGIT_TIMEOUT_MS="100")
    try:
        children = service.children()
        assert set(children) == {"call", "web"}
        playing = asyncio.Event()
        call = asyncio.create_task(slow_call(service.agi_port, 0.15, playing))
        await asyncio.wait_for(playing.wait(), 30)
        os.kill(service.pid, signal.SIGTERM)
        # New calls are refused from now on, while this one is still being read.
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", service.agi_port), timeout=2).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < deadline, "FastAGI still accepting after SIGTERM"
            await asyncio.sleep(0.05)
        assert not call.done()
        # The web process outlives the drain (it sends what those last calls queue).
        assert pid_alive(children["web"])
        assert await asyncio.to_thread(healthz, service.http_port) == 200
        result = await call
        assert result.variables["SAC_RESULT"] == "OK", result.commands
        assert result.digits_between()[0] == result.variables["SAC_PROTOCOL"]
        assert result.closed_by_server
        code = await asyncio.to_thread(service.proc.wait, 30)  # type: ignore[union-attr]
        assert code == 0, service.log_text()[-2000:]
        assert not any(pid_alive(pid) for pid in children.values())
        log = service.log_text()
        assert log.index("[call] sac_ivr.runner: stopping") < log.index(
            "[web] sac_ivr.runner: stopping"
        )
    finally:
        service.kill()


async def test_opening_sms_is_sent_promptly_across_the_split_and_a_web_restart(
    tmp_path: Path,
) -> None:
    """The issuer's after-commit wake-up reaches the outbox worker in the web process.
    The worker's own scan is 10 minutes apart here: only the wake-up can send it."""
    sms = await start_sms_provider()
    service = None
    try:
        service = await start(
            tmp_path,
            SAC_IVR_COMPANY_NAME="ACME",
            SAC_IVR_SMS_PROVIDER="webhook",
            SAC_IVR_SMS_URL=sms.url,
            SAC_IVR_SMS_SECRET=sms.token,
            SAC_IVR_SMS_SENDER="ACME",
            SAC_IVR_OUTBOX_POLL_INTERVAL="600",
        )
        first = await fake_call("127.0.0.1", service.agi_port, uniqueid="s.1", callerid=MOBILE)
        number = first.variables["SAC_PROTOCOL"]
        await wait_until(lambda: len(sms.accepted) == 1, timeout=30, what="the opening SMS")
        assert number in sms.texts()[0]

        web = service.children()["web"]
        offset = service.log_size()
        os.kill(web, signal.SIGKILL)
        await service.await_log("web process serving again", after=offset, timeout=60)
        second = await fake_call("127.0.0.1", service.agi_port, uniqueid="s.2", callerid=MOBILE)
        await wait_until(lambda: len(sms.accepted) == 2, timeout=30, what="the second SMS")
        assert second.variables["SAC_PROTOCOL"] in sms.texts()[1]
    finally:
        if service is not None:
            service.stop()
        await stop_sms_provider(sms)
