"""Two ``sac-ivr serve`` on one database behind the dialplan's SAC_AGI_HOSTS, for real
(issue #10 item 1).

The dialplan global SAC_AGI_HOSTS lists the first instance, then the second; both
share one SQLite file. Callers come in while (a) the first instance was stopped
before the calls: each call is refused by it and served by the second at once; (b)
the first instance is killed (SIGKILL) in the middle of a burst of calls: the callers
it was reading to hear their whole stored number from the dialplan, the later ones
are served by the second. In both, every caller hears a number stored exactly once,
reaches the menu, and is never hung up on (Decreto 6.523 art. 4 §2, art. 15).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.asterisk.ami import AmiClient, Message
from tests.asterisk.audio import Heard, PromptLibrary, digits_heard
from tests.asterisk.instance import AsteriskInstance, free_port
from tests.asterisk.service import SacIvrService
from tests.asterisk.sipp import CallResult, SipCall

INTRO = "sac/protocol-intro"
UNAVAILABLE = "sac/protocol-unavailable"
STAGGER_S = 0.4  # between two calls of a burst
KILL_AFTER = 3  # (b): the first instance dies once the 3rd call hears its intro


@dataclass
class Caller:
    call: SipCall
    result: CallResult
    heard: list[Heard]
    menu: Message | None  # the caller entering sac-menu (None: it never did)
    hangup_requests: list[Message]  # before the test hung it up
    tried: list[str]  # the protocol route's AGI URLs, in the order the dialplan ran them
    failover_s: float | None  # from the AGI on the first host to the AGI on the second

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.heard]

    def explain(self) -> str:
        return f"heard {self.names}; tried {self.tried}; {self.result.work_dir}"


@dataclass
class Run:
    callers: list[Caller]
    rows: list[dict[str, Any]]  # every protocols row of the shared database
    issued_by: dict[str, str]  # number -> "first" | "second" (from the services' logs)
    first: str  # agi://host:port of each instance
    second: str

    def row(self, caller: Caller) -> dict[str, Any]:
        rows = [r for r in self.rows if r["caller_number"] == caller.call.caller_num]
        assert len(rows) == 1, (rows, caller.explain())
        return rows[0]


@dataclass
class Hosts:
    first: SacIvrService
    second: SacIvrService
    database: Path


_LOG_LINE = re.compile(r"^\[(?P<at>[0-9-]+ [0-9:.]+)\].*Executing \[.*\] AGI\(\"(?P<chan>[^\"]+)\"")


def _agi_times(full_log: Path, channel: str) -> list[float]:
    """When Asterisk started each AGI() of ``channel`` (its full log, ms resolution)."""
    times = []
    for line in full_log.read_text(errors="replace").splitlines():
        match = _LOG_LINE.match(line)
        if match and match["chan"] == channel:
            at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S.%f")
            times.append(at.timestamp())
    return times


def _rows(database: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM protocols")]


def _issued_by(hosts: Hosts) -> dict[str, str]:
    found = {}
    for name, service in (("first", hosts.first), ("second", hosts.second)):
        for number in re.findall(r"protocol (\d+) (?:issued|found again)", service.log_text()):
            found.setdefault(number, name)
    return found


def _collect(
    asterisk: AsteriskInstance,
    ami: AmiClient,
    prompts: PromptLibrary,
    hosts: Hosts,
    calls: list[SipCall],
    since: int,
) -> Run:
    """Each caller: wait until it reaches the menu, hang it up (AMI), gather what it
    heard and which hosts the dialplan tried."""
    callers = []
    for call in calls:
        try:
            menu: Message | None = ami.wait_event(
                {"Event": "Newexten", "Context": "sac-menu", "CallerIDNum": call.caller_num},
                timeout=60,
                since=since,
            )
        except TimeoutError:
            menu = None
        mark = ami.mark()
        if menu is not None:
            ami.action("Hangup", Channel=menu["Channel"])
        result = call.wait(20)
        requests = [
            e
            for e in ami.events[since:mark]
            if e.get("Event") == "HangupRequest" and e.get("CallerIDNum") == call.caller_num
        ]
        agis = ami.find_events(
            lambda e, num=call.caller_num: (
                e.get("Event") == "Newexten"
                and e.get("Application") == "AGI"
                and e.get("CallerIDNum") == num
                and "/protocol," in e.get("AppData", "")
            ),
            since,
        )
        tried = [e["AppData"].split("/protocol,")[0] for e in agis]
        failover_s = None
        if menu is not None and len(tried) >= 2:
            times = _agi_times(asterisk.full_log, menu["Channel"])
            if len(times) >= 2:
                failover_s = times[1] - times[0]
        callers.append(
            Caller(call, result, prompts.find(result.audio), menu, requests, tried, failover_s)
        )
    return Run(
        callers,
        _rows(hosts.database),
        _issued_by(hosts),
        f"agi://{hosts.first.agi_address}",
        f"agi://{hosts.second.agi_address}",
    )


@pytest.fixture(scope="module")
def hosts(asterisk: AsteriskInstance, ami: AmiClient, sipp_available: None) -> Iterator[Hosts]:
    """Two instances on one SQLite file; the dialplan lists the first, then the second.
    Only the second follows AMI (the call log is single-process)."""
    database = asterisk.work_dir / "agi-hosts.sqlite3"
    first = SacIvrService(
        asterisk,
        name="sac-ivr-hosts-first",
        database=database,
        env={"SAC_IVR_AMI_ENABLED": "false"},
    )
    second = SacIvrService(
        asterisk, name="sac-ivr-hosts-second", database=database, agi_port=free_port()
    )
    try:
        first.start()  # creates the schema; then the second joins it
        second.start()
        ami.action(
            "Setvar",
            Variable="SAC_AGI_HOSTS",
            Value=f"{first.agi_address},{second.agi_address}",
        )
        yield Hosts(first, second, database)
    finally:
        ami.action("Setvar", Variable="SAC_AGI_HOSTS", Value="")
        first.stop()
        second.stop()


@pytest.fixture(scope="module")
def stopped(
    asterisk: AsteriskInstance, ami: AmiClient, prompts: PromptLibrary, hosts: Hosts
) -> Run:
    """(a) The first instance stopped (SIGTERM) before the calls."""
    hosts.first.stop()
    calls = [SipCall(asterisk, prompts=prompts) for _ in range(4)]
    since = ami.mark()
    try:
        for call in calls:
            call.start()
            time.sleep(STAGGER_S)
        return _collect(asterisk, ami, prompts, hosts, calls, since)
    finally:
        for call in calls:
            call.stop()


@pytest.fixture(scope="module")
def killed(
    asterisk: AsteriskInstance,
    ami: AmiClient,
    prompts: PromptLibrary,
    hosts: Hosts,
    stopped: Run,  # one scenario after the other
) -> Run:
    """(b) The first instance started again, then killed (SIGKILL) mid-burst."""
    hosts.first.start()
    calls = [SipCall(asterisk, prompts=prompts) for _ in range(8)]
    since = ami.mark()
    try:
        for index, call in enumerate(calls, start=1):
            call.start()
            if index == KILL_AFTER:
                ami.wait_event(
                    lambda e, num=call.caller_num: (
                        e.get("Event") == "AGIExecStart"
                        and e.get("CallerIDNum") == num
                        and e.get("Command", "").startswith(f"STREAM FILE {INTRO}")
                    ),
                    timeout=30,
                    since=since,
                )
                time.sleep(0.3)
                hosts.first.kill()
            time.sleep(STAGGER_S)
        return _collect(asterisk, ami, prompts, hosts, calls, since)
    finally:
        for call in calls:
            call.stop()


def _assert_every_caller_served(run: Run) -> None:
    numbers = [r["number"] for r in run.rows]
    assert len(numbers) == len(set(numbers)), f"a number stored twice: {numbers}"
    for caller in run.callers:
        assert caller.menu is not None, caller.explain()
        assert not caller.hangup_requests, caller.hangup_requests  # only the test hung up
        number = run.row(caller)["number"]
        assert UNAVAILABLE not in caller.names, caller.explain()
        # the whole stored number, whoever read it (sac-ivr or the dialplan)
        assert number in digits_heard(caller.heard), caller.explain()


def test_first_host_stopped_every_call_served_by_the_second_at_once(stopped: Run) -> None:
    _assert_every_caller_served(stopped)
    for caller in stopped.callers:
        number = stopped.row(caller)["number"]
        assert caller.tried == [stopped.first, stopped.second], caller.explain()
        assert stopped.issued_by.get(number) == "second", caller.explain()
        # a refused connection costs no noticeable time
        assert caller.failover_s is not None and caller.failover_s < 0.2, caller.explain()


def test_first_host_killed_mid_burst_every_caller_gets_one_stored_number(killed: Run) -> None:
    _assert_every_caller_served(killed)
    by_first = [
        c for c in killed.callers if killed.issued_by.get(killed.row(c)["number"]) == "first"
    ]
    by_second = [c for c in killed.callers if c not in by_first]
    # the kill fell in the middle: both served some, and every later caller went on
    assert by_first and by_second, [c.explain() for c in killed.callers]
    for caller in killed.callers[KILL_AFTER:]:
        assert caller in by_second, caller.explain()
        assert caller.tried[0] == killed.first and killed.second in caller.tried, caller.explain()
    for caller in by_second:
        assert caller.tried[-1] == killed.second, caller.explain()
