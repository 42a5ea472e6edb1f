"""Repeated log messages are written once with a count (issue #8 item 2), and an
exception with no text is logged by its kind (item 15)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from sac_ivr.logs import AGI_CONNECTIONS, DedupFilter, setup_logging


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged() -> Iterator[tuple[io.StringIO, DedupFilter, Clock]]:
    """The service's logging set-up, writing to a buffer, with a clock of our own."""
    stream = io.StringIO()
    clock = Clock()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    dedup = setup_logging("INFO", role="call", stream=stream, clock=clock)
    yield stream, dedup, clock
    root.handlers[:], level = saved
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_repeated_warning_is_written_once_then_counted(logged) -> None:
    stream, dedup, clock = logged
    log = logging.getLogger(AGI_CONNECTIONS)
    for i in range(5000):
        log.warning("FastAGI connection from %s refused: not in agi_allowed_peers", f"10.0.0.{i}")
    assert len(lines(stream)) == 1
    assert "10.0.0.0 refused" in lines(stream)[0] and "[call]" in lines(stream)[0]
    clock.now += 30
    dedup.flush()  # the window is not over
    assert len(lines(stream)) == 1
    clock.now += 31
    dedup.flush()
    assert len(lines(stream)) == 2
    assert "10.0.0.4999 refused" in lines(stream)[1]
    assert "[repeated 4999 more times in the last 61 s]" in lines(stream)[1]
    # Still flooding: the next window gives one summary line, nothing more.
    for _ in range(10):
        log.warning("FastAGI connection from %s refused: not in agi_allowed_peers", "10.0.0.1")
    assert len(lines(stream)) == 2
    clock.now += 61
    dedup.flush()
    assert "[repeated 10 more times" in lines(stream)[2]
    # Quiet for a window: the next one is written in full again.
    clock.now += 61
    dedup.flush()
    log.warning("FastAGI connection from %s refused: not in agi_allowed_peers", "10.0.0.9")
    assert lines(stream)[3].endswith(
        "FastAGI connection from 10.0.0.9 refused: not in agi_allowed_peers"
    )


def test_each_kind_is_counted_apart_and_ordinary_lines_pass(logged) -> None:
    stream, dedup, _ = logged
    calls = logging.getLogger("sac_ivr.agi.routes.protocol")
    for i in range(3):
        calls.info("uniqueid=%s: protocol %s issued", i, i)  # one line per call, as ever
        calls.error("uniqueid=%s: no protocol number issued (%s)", i, "database down")
        logging.getLogger("aiohttp.server").error("Error handling request from %s", "x")
        calls.critical("sequence overflow %s", i)  # never held back
    text = stream.getvalue()
    assert text.count(": protocol ") == 3 and text.count("no protocol number") == 1
    assert text.count("Error handling request") == 1
    assert text.count("sequence overflow") == 3
    dedup.flush_all()
    assert "no protocol number issued (database down) [repeated 2 more times" in stream.getvalue()
    assert "Error handling request from x [repeated 2 more times" in stream.getvalue()


def test_an_exception_with_no_text_is_logged_by_its_kind(logged) -> None:
    stream, _, _ = logged
    log = logging.getLogger("sac_ivr.agi.routes.protocol")
    log.error("uniqueid=%s: no protocol number issued (%s)", "1.1", TimeoutError())
    log.error("outbox scan failed: %s", ConnectionRefusedError(111, "Connection refused"))
    text = stream.getvalue()
    assert "no protocol number issued (TimeoutError)" in text
    assert "outbox scan failed: [Errno 111] Connection refused" in text
