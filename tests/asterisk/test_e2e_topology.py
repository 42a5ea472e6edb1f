"""The reference scale-out topology, for real (issue #10 item 6; README "Running at
scale" > "Reference topology").

Everything on 127.0.0.1, each part on its own ports:

- Kamailio (Debian's package) running ``dialplan/kamailio.cfg.sample`` with only its
  addresses changed: dispatcher set of the two Asterisk servers, round-robin,
  OPTIONS probes every second, an INVITE that gets no answer goes on to the next
  server, record-route;
- two real Asterisk 22 (``a`` and ``b``), each with the project's dialplan and
  ``SAC_AGI_HOSTS`` listing both sac-ivr, each its own first (``a``: first, second;
  ``b``: second, first);
- two real ``sac-ivr serve`` (``first``, ``second``) on one PostgreSQL database: a
  private primary with a synchronous streaming standby, given as a multi-host URL
  (the ``database`` fixture); both follow both Asterisk over AMI, one writer per
  server (the call log exactly once);
- SIPp callers sending their INVITE to Kamailio only.

Phases, one after the other, each a burst of callers:

1. all up: the calls are spread over both Asterisk and both sac-ivr, and every
   caller hears their own stored number and reaches the menu; each call is once in
   the call log, under its server;
2. ``first`` is killed (SIGKILL) in the middle of the burst: every caller still hears
   a stored number; those placed after the kill are served by ``second`` (Asterisk
   ``a`` finds ``first`` refusing and goes on to the next host at once);
3. with one call in progress on each Asterisk, ``b`` is killed (SIGKILL), then a
   burst: Kamailio still sends ``b`` INVITEs until a probe or a call finds it
   silent; those INVITEs go on to ``a`` after the proxy's FR_TIMER, then ``b`` is
   out of the set; no new caller is lost. The call in progress on ``b`` is cut
   (its media was there), the one on ``a`` goes on;
4. ``b`` started again: the probes put it back, calls are shared again;
5. ``b`` killed with no call coming: the probes alone take it out;
6. the primary database crashes mid-burst and the standby is promoted half a second
   later: every caller still hears a stored number (numbers from the outage reserve
   meanwhile, replayed to the new primary), and the call log catches up.

The times (kill to "is down", start to "is up") are printed with ``-s``: the
README's figures ("Running at scale" > "Reference topology"); nothing asserts them.

"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.asterisk import chroot
from tests.asterisk.ami import AmiClient, Message
from tests.asterisk.audio import Heard, PromptLibrary, digits_heard
from tests.asterisk.conftest import unavailable
from tests.asterisk.instance import (
    AGENT_ENDPOINTS,
    AMI_SECRET,
    AMI_USER,
    AsteriskError,
    AsteriskInstance,
    Ports,
    free_port,
    free_udp_range,
)
from tests.asterisk.kamailio import SAMPLE, Kamailio, ProxiedCall
from tests.asterisk.kamailio import unavailable_reason as kamailio_unavailable
from tests.asterisk.service import SacIvrService
from tests.asterisk.sipp import CallResult
from tests.private_postgres import PrivatePostgres, multi_host_url

UNAVAILABLE = "sac/protocol-unavailable"
INTRO = "sac/protocol-intro"
CALLERS = 6  # per phase: SIPp audio checks are load-sensitive on two cores
STAGGER_S = 0.5  # between two calls of a burst
KILL_AFTER = 3  # phase 2: ``first`` dies once the 3rd caller hears its intro
SERVERS = ("a", "b")
INSTANCES = ("first", "second")


# -- the database ------------------------------------------------------------------


class Database:
    """The one database both sac-ivr share: a private PostgreSQL primary with a
    synchronous streaming standby, given to sac-ivr as a multi-host URL; the last
    phase crashes the primary and promotes the standby."""

    def __init__(self) -> None:
        self._primary = PrivatePostgres(synchronous_standby="standby1")
        self._standby = self._primary.standby("standby1")
        self.current: PrivatePostgres = self._primary

    def __enter__(self) -> Database:
        self._primary.__enter__()
        try:
            self._standby.__enter__()
        except BaseException:
            self._primary.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._standby.__exit__(*exc)
        finally:
            self._primary.__exit__(*exc)

    @property
    def url(self) -> str:
        return multi_host_url(self._primary, self._standby)

    def fail_over(self, gap_s: float = 0.5) -> None:
        """The primary crashes (``pg_ctl stop -m immediate``); ``gap_s`` later (a
        failover tool deciding) the standby is promoted."""
        self._primary.stop(mode="immediate")
        time.sleep(gap_s)
        self._standby.promote()
        self.current = self._standby

    def rows(self) -> list[dict[str, Any]]:
        """Every ``protocols`` row (number, caller, the call's ids) on the primary."""
        return self._fetch("SELECT number, caller_number, linkedid, channel FROM protocols")

    def call_rows(self) -> list[dict[str, Any]]:
        """Every call-log row (server, linkedid, caller, end) on the primary."""
        return self._fetch("SELECT server, linkedid, caller_number, ended_at FROM calls")

    def _fetch(self, sql: str) -> list[dict[str, Any]]:
        async def fetch() -> list[dict[str, Any]]:
            import asyncpg

            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.current.port, user="postgres", timeout=10
            )
            try:
                records = await conn.fetch(sql)
            finally:
                await conn.close()
            return [dict(r) for r in records]

        return asyncio.run(fetch())


# -- the topology ------------------------------------------------------------------


@dataclass
class Topology:
    kamailio: Kamailio
    asterisks: dict[str, AsteriskInstance]
    amis: dict[str, AmiClient]
    services: dict[str, SacIvrService]
    database: Database
    prompts: PromptLibrary
    work_dir: Path
    killed: list[str] = field(default_factory=list)  # servers killed so far

    def live_amis(self) -> dict[str, AmiClient]:
        return {k: v for k, v in self.amis.items() if k not in self.killed}

    def uri(self, server: str) -> str:
        return f"sip:127.0.0.1:{self.asterisks[server].sip_port}"

    def issued_by(self) -> dict[str, str]:
        """number -> the instance that logged it issued (or found again)."""
        found: dict[str, str] = {}
        for name, service in self.services.items():
            for number in re.findall(r"protocol (\d+) (?:issued|found again)", service.log_text()):
                found.setdefault(number, name)
        return found

    def call(self) -> ProxiedCall:
        return ProxiedCall(
            self.asterisks["a"],  # only for the call's work folder
            proxy=("127.0.0.1", self.kamailio.port),
            prompts=self.prompts,
        )


@pytest.fixture(scope="module")
def requirements() -> None:
    """Root and the chroot (Asterisk), Kamailio, SIPp; else skip (or fail in CI)."""
    reason = chroot.unavailable_reason() or kamailio_unavailable()
    if reason is None and shutil.which("sipp") is None:
        reason = "SIP call tests need sipp (Debian package sip-tester)"
    if reason:
        unavailable(reason)
    try:
        chroot.ensure_chroot()
    except chroot.ChrootUnavailable as exc:
        unavailable(str(exc).splitlines()[0])


def _free_ports() -> Ports:
    """Free ports for one of the two servers (not the SAC_IVR_TEST_* overrides of
    ``Ports.from_env``, which would give both the same)."""
    rtp_start, rtp_end = free_udp_range(200)
    return Ports(
        ami=free_port(),
        sip=free_port(socket.SOCK_DGRAM),
        agi=free_port(),
        rtp_start=rtp_start,
        rtp_end=rtp_end,
        agents=tuple(free_port(socket.SOCK_DGRAM) for _ in AGENT_ENDPOINTS),
    )


@pytest.fixture(scope="module")
def database(requirements: None) -> Iterator[Database]:
    with Database() as db:
        yield db


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, requirements: None, database: Database
) -> Iterator[Topology]:
    work = tmp_path_factory.mktemp("topology")
    agi_ports = {name: free_port() for name in INSTANCES}
    hosts = {name: f"127.0.0.1:{port}" for name, port in agi_ports.items()}
    order = {"a": ("first", "second"), "b": ("second", "first")}
    asterisks = {
        server: AsteriskInstance(
            work / f"asterisk-{server}",
            ports=_free_ports(),
            dialplan_globals={"SAC_AGI_HOSTS": ",".join(hosts[n] for n in order[server])},
            system_name=f"sac-{server}",
        )
        for server in SERVERS
    }
    amis: dict[str, AmiClient] = {}
    services: dict[str, SacIvrService] = {}
    kamailio: Kamailio | None = None
    try:
        for server, instance in asterisks.items():
            try:
                instance.start()
            except AsteriskError as exc:
                pytest.fail(f"Asterisk {server} did not start: {exc}", pytrace=False)
            amis[server] = AmiClient("127.0.0.1", instance.ports.ami, AMI_USER, AMI_SECRET)
            amis[server].connect()
        for name in INSTANCES:  # one after the other: the first creates the schema
            services[name] = SacIvrService(
                asterisks["a"],
                name=f"sac-ivr-{name}",
                agi_port=agi_ports[name],
                env={
                    "SAC_IVR_DATABASE_URL": database.url,
                    # Both instances follow both servers; one writes each one's log.
                    "SAC_IVR_AMI_ENABLED": "true",
                    "SAC_IVR_AMI_SERVERS": ",".join(
                        f"{server}=127.0.0.1:{a.ports.ami}" for server, a in asterisks.items()
                    ),
                },
            ).start()
        kamailio = Kamailio(
            work / "kamailio", [f"sip:127.0.0.1:{a.sip_port}" for a in asterisks.values()]
        ).start()
        yield Topology(
            kamailio,
            asterisks,
            amis,
            services,
            database,
            PromptLibrary(asterisks["a"].sounds_dir),
            work,
        )
    finally:
        if kamailio is not None:
            kamailio.stop()
        for service in services.values():
            service.stop()
        for ami in amis.values():
            ami.close()
        for instance in asterisks.values():
            instance.stop()


# -- one burst of callers ----------------------------------------------------------


@dataclass
class Caller:
    call: ProxiedCall
    placed: float  # time.monotonic() when SIPp started
    server: str | None  # the Asterisk the call reached the menu on
    menu: Message | None
    result: CallResult
    heard: list[Heard]

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.heard]

    def explain(self) -> str:
        return f"on {self.server}, heard {self.names}; {self.result.work_dir}"


@dataclass
class Phase:
    callers: list[Caller]
    rows: list[dict[str, Any]]
    issued_by: dict[str, str]
    kamailio_since: int  # the proxy's log index when the phase began
    events: dict[str, Any] = field(default_factory=dict)  # what the phase measured

    def row(self, caller: Caller) -> dict[str, Any]:
        rows = [r for r in self.rows if r["caller_number"] == caller.call.caller_num]
        assert len(rows) == 1, (rows, caller.explain())
        return rows[0]


def _wait_any(
    amis: dict[str, AmiClient],
    match: Callable[[Message], bool],
    since: dict[str, int],
    timeout: float,
) -> tuple[str, Message] | None:
    """The first event matching ``match`` on any of ``amis`` (polling), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for server, ami in amis.items():
            found = ami.find_events(match, since.get(server, 0))
            if found:
                return server, found[0]
        time.sleep(0.05)
    return None


def _intro_heard(topology: Topology, call: ProxiedCall, since: dict[str, int]) -> str | None:
    """The Asterisk on which ``call`` started hearing its number's intro."""
    num = call.caller_num
    found = _wait_any(
        topology.live_amis(),
        lambda e: (
            e.get("Event") == "AGIExecStart"
            and e.get("CallerIDNum") == num
            and e.get("Command", "").startswith(f"STREAM FILE {INTRO}")
        ),
        since,
        timeout=30,
    )
    return found[0] if found is not None else None


def _collect(
    topology: Topology, calls: list[tuple[ProxiedCall, float]], since: dict[str, int]
) -> Phase:
    """Each call: wait until it reaches the menu, hang it up there (AMI), gather what
    it heard."""
    callers = []
    for call, placed in calls:
        num = call.caller_num
        found = _wait_any(
            topology.live_amis(),
            lambda e, num=num: (
                e.get("Event") == "Newexten"
                and e.get("Context") == "sac-menu"
                and e.get("CallerIDNum") == num
            ),
            since,
            timeout=60,
        )
        server, menu = found if found is not None else (None, None)
        if server is not None and menu is not None:
            topology.amis[server].action("Hangup", Channel=menu["Channel"])
        result = call.wait(20)
        callers.append(
            Caller(call, placed, server, menu, result, topology.prompts.find(result.audio))
        )
    return Phase(callers, topology.database.rows(), topology.issued_by(), 0)


def _burst(
    topology: Topology, count: int, after_each: Callable[[int, ProxiedCall], None] | None = None
) -> Phase:
    """Place ``count`` calls through the proxy, ``STAGGER_S`` apart, and collect them."""
    since = {server: ami.mark() for server, ami in topology.amis.items()}
    kamailio_since = topology.kamailio.mark()
    calls: list[tuple[ProxiedCall, float]] = []
    try:
        for index in range(1, count + 1):
            call = topology.call()
            call.start()
            calls.append((call, time.monotonic()))
            if after_each is not None:
                after_each(index, call)
            time.sleep(STAGGER_S)
        phase = _collect(topology, calls, since)
    finally:
        for call, _ in calls:
            call.stop()
    phase.kamailio_since = kamailio_since
    return phase


def _assert_one_ended_call_row_each(topology: Topology, phase: Phase) -> None:
    """Each caller's call in the call log once, under the Asterisk it was on, ended
    (the log follows AMI: waited for, within a bound)."""
    deadline = time.monotonic() + 30
    while True:
        rows = topology.database.call_rows()
        mine = {
            c.call.caller_num: [r for r in rows if r["caller_number"] == c.call.caller_num]
            for c in phase.callers
        }
        done = all(len(found) == 1 and found[0]["ended_at"] for found in mine.values())
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for caller in phase.callers:
        found = mine[caller.call.caller_num]
        assert len(found) == 1, (found, caller.explain())
        assert found[0]["server"] == caller.server, (found, caller.explain())
        assert found[0]["linkedid"] == phase.row(caller)["linkedid"], caller.explain()
        assert found[0]["ended_at"] is not None, (found, caller.explain())


def _assert_every_caller_heard_their_stored_number(phase: Phase) -> None:
    numbers = [r["number"] for r in phase.rows]
    assert len(numbers) == len(set(numbers)), f"a number stored twice: {numbers}"
    for caller in phase.callers:
        assert caller.menu is not None, caller.explain()
        assert UNAVAILABLE not in caller.names, caller.explain()
        number = phase.row(caller)["number"]
        assert number in digits_heard(caller.heard), caller.explain()
        assert phase.row(caller)["linkedid"].startswith(f"sac-{caller.server}-"), caller.explain()


# -- the sample as the test runs it -----------------------------------------------


def test_the_proxy_runs_the_sample_with_only_its_four_values_changed(tmp_path: Path) -> None:
    """The config the test writes is the shipped sample but for the four
    ``#!substdef`` lines at its top, and Kamailio accepts it (``kamailio -c``)."""
    reason = kamailio_unavailable()
    if reason:
        unavailable(reason)
    proxy = Kamailio(tmp_path, ["sip:127.0.0.1:5071", "sip:127.0.0.1:5072"], port=5070)
    proxy.write_config()
    sample = SAMPLE.read_text().splitlines()
    written = proxy.config.read_text().splitlines()
    assert len(sample) == len(written)
    changed = [(a, b) for a, b in zip(sample, written, strict=True) if a != b]
    assert [b for _, b in changed] == [
        '#!substdef "!LISTEN_ADDR!127.0.0.1!g"',
        '#!substdef "!LISTEN_PORT!5070!g"',
        f'#!substdef "!DISPATCHER_LIST!{proxy.list_file}!g"',
        f'#!substdef "!RUN_DIR!{tmp_path}!g"',
    ]
    assert proxy.list_file.read_text().splitlines()[-2:] == [
        "1 sip:127.0.0.1:5071 8",
        "1 sip:127.0.0.1:5072 8",
    ]
    check = subprocess.run(
        ["kamailio", "-c", "-f", str(proxy.config)], capture_output=True, timeout=30, check=False
    )
    assert check.returncode == 0, check.stderr.decode(errors="replace")[-2000:]


# -- phase 1: all up ---------------------------------------------------------------


@pytest.fixture(scope="module")
def all_up(topology: Topology) -> Phase:
    return _burst(topology, CALLERS)


def test_all_up_calls_spread_over_both_asterisk_and_both_sac_ivr(
    all_up: Phase, topology: Topology
) -> None:
    _assert_every_caller_heard_their_stored_number(all_up)
    _assert_one_ended_call_row_each(topology, all_up)
    servers = [c.server for c in all_up.callers]
    assert set(servers) == set(SERVERS), servers
    # each Asterisk lists a different sac-ivr first: both issued numbers
    issuers = {all_up.issued_by.get(all_up.row(c)["number"]) for c in all_up.callers}
    assert issuers == set(INSTANCES), issuers


# -- phase 2: one sac-ivr killed ---------------------------------------------------


@pytest.fixture(scope="module")
def sac_ivr_killed(topology: Topology, all_up: Phase) -> Phase:
    """``first`` killed (SIGKILL) once the KILL_AFTER-th caller hears its intro."""
    killed_at: list[float] = []

    def kill(index: int, call: ProxiedCall) -> None:
        if index != KILL_AFTER:
            return
        _intro_heard(topology, call, {})
        topology.services["first"].kill()
        killed_at.append(time.monotonic())

    phase = _burst(topology, CALLERS, kill)
    phase.events["killed_at"] = killed_at[0] if killed_at else None
    return phase


def test_sac_ivr_killed_every_caller_still_hears_a_stored_number(
    sac_ivr_killed: Phase, topology: Topology
) -> None:
    phase = sac_ivr_killed
    assert phase.events["killed_at"] is not None
    assert not topology.services["first"].running()
    _assert_every_caller_heard_their_stored_number(phase)
    assert {c.server for c in phase.callers} == set(SERVERS)
    after = [c for c in phase.callers if c.placed > phase.events["killed_at"]]
    assert after, [c.explain() for c in phase.callers]
    for caller in after:  # only the survivor can have served them
        assert phase.issued_by.get(phase.row(caller)["number"]) == "second", caller.explain()


# -- phase 3: one Asterisk killed --------------------------------------------------


@dataclass
class CutCall:
    """A call in progress on the Asterisk that was killed."""

    caller: str
    result: CallResult
    killed_at: float
    number: str | None  # the number stored for it (before the kill)
    digits: str  # the digits it heard whole

    def audio_after_kill_s(self) -> float:
        """How long after the kill the caller still got audio (RTP) from it."""
        return max((p.time for p in self.result.packets), default=0.0) - self.killed_at


@pytest.fixture(scope="module")
def asterisk_killed(
    topology: Topology, sac_ivr_killed: Phase
) -> Iterator[tuple[Phase, list[CutCall]]]:
    """Two callers in progress (round-robin: one on each Asterisk); Asterisk ``b``
    killed (SIGKILL); then a burst."""
    victim = topology.asterisks["b"]
    assert victim.pid is not None
    since = {server: ami.mark() for server, ami in topology.amis.items()}
    in_flight: list[ProxiedCall] = []
    placed: dict[str, float] = {}
    for _ in range(2):
        in_flight.append(topology.call())
        in_flight[-1].start()
        placed[in_flight[-1].caller_num] = time.monotonic()
        time.sleep(STAGGER_S)
    on = {call.caller_num: _intro_heard(topology, call, since) for call in in_flight}
    assert sorted(map(str, on.values())) == ["a", "b"], on
    kamailio_since = topology.kamailio.mark()
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    topology.killed.append("b")
    victim.stop()  # reaps it
    try:
        phase = _burst(topology, CALLERS)
        cut = []
        for call in in_flight:
            if on[call.caller_num] == "b":
                result = call.wait(1)
                numbers = [r["number"] for r in phase.rows if r["caller_number"] == call.caller_num]
                digits = digits_heard(topology.prompts.find(result.audio))
                cut.append(
                    CutCall(call.caller_num, result, killed_at, next(iter(numbers), None), digits)
                )
        survivors = [c for c in in_flight if on[c.caller_num] == "a"]
        phase.callers += _collect(
            topology, [(c, placed[c.caller_num]) for c in survivors], since
        ).callers
        phase.kamailio_since = kamailio_since
        phase.events["killed_at"] = killed_at
        try:
            down = topology.kamailio.wait_line(
                rf"dispatcher: {re.escape(topology.uri('b'))} is down",
                timeout=15,
                since=kamailio_since,
            )
            phase.events["down_after_s"] = down.at - killed_at
        except TimeoutError:
            phase.events["down_after_s"] = None
        phase.events["flags"] = topology.kamailio.dispatcher_flags()
        yield phase, cut
    finally:
        for call in in_flight:
            call.stop()


def test_asterisk_killed_new_calls_go_to_the_other_and_it_leaves_the_set(
    asterisk_killed: tuple[Phase, list[CutCall]], topology: Topology
) -> None:
    phase, cut = asterisk_killed
    _assert_every_caller_heard_their_stored_number(phase)  # no new caller lost
    assert {c.server for c in phase.callers} == {"a"}
    down_after = phase.events["down_after_s"]
    assert down_after is not None, topology.kamailio.tail()
    assert phase.events["flags"][topology.uri("b")].startswith("I"), phase.events["flags"]
    assert phase.events["flags"][topology.uri("a")].startswith("A"), phase.events["flags"]
    # the first INVITEs still went to b (round-robin, before it was found dead), and
    # went on to a: the failover path was taken
    retried = topology.kamailio.find(
        rf"no answer from {re.escape(topology.uri('b'))} .*next Asterisk", phase.kamailio_since
    )
    assert retried, topology.kamailio.tail()
    print(
        f"\ntopology: Asterisk b killed; out of the dispatcher set after {down_after:.2f} s; "
        f"{len(retried)} of {CALLERS} new INVITEs sent to b first, then to a; "
        f"new callers lost: {sum(c.menu is None for c in phase.callers)}; "
        f"calls in progress on b cut: {len(cut)}"
    )


def test_asterisk_killed_its_calls_in_progress_are_cut(
    asterisk_killed: tuple[Phase, list[CutCall]],
) -> None:
    """What the proxy cannot save: the media of a call was on the dead server. The
    caller (killed while its number was being read) never hears the rest of it and
    gets no BYE (its own side ends the call)."""
    _, cut = asterisk_killed
    assert len(cut) == 1
    (call,) = cut
    assert call.result.packets, call  # it was talking to b
    assert call.number is not None, call  # stored before the kill...
    assert call.number not in call.digits, call  # ...never heard whole
    assert not call.result.bye_received
    print(
        f"\ntopology: the call in progress on b got its last audio "
        f"{call.audio_after_kill_s():.2f} s after the kill, and no BYE"
    )


# -- phase 4: the Asterisk back ----------------------------------------------------


@pytest.fixture(scope="module")
def asterisk_back(topology: Topology, asterisk_killed: tuple[Phase, list[CutCall]]) -> Phase:
    """Asterisk ``b`` started again (same ports): the probes put it back in the set."""
    since = topology.kamailio.mark()
    victim = topology.asterisks["b"]
    victim.start()
    started_at = time.monotonic()
    topology.amis["b"] = AmiClient("127.0.0.1", victim.ports.ami, AMI_USER, AMI_SECRET)
    topology.amis["b"].connect()
    topology.killed.remove("b")
    up = topology.kamailio.wait_line(
        rf"dispatcher: {re.escape(topology.uri('b'))} is up", timeout=15, since=since
    )
    phase = _burst(topology, CALLERS // 2 + 1)
    phase.events["up_after_s"] = up.at - started_at
    return phase


def test_asterisk_back_the_probes_put_it_back_and_calls_spread_again(
    asterisk_back: Phase,
) -> None:
    _assert_every_caller_heard_their_stored_number(asterisk_back)
    assert {c.server for c in asterisk_back.callers} == set(SERVERS)
    print(
        f"\ntopology: Asterisk b FullyBooted again; back in the dispatcher set after "
        f"{asterisk_back.events['up_after_s']:.2f} s"
    )


# -- phase 5: an idle Asterisk dies ------------------------------------------------


@dataclass
class Outage:
    down_after_s: float | None  # from the kill to the proxy's "is down"
    flags: dict[str, str]
    retried: int  # INVITEs that went to the dead one first


@pytest.fixture(scope="module")
def idle_asterisk_killed(topology: Topology, asterisk_back: Phase) -> Outage:
    """``b`` killed with no call coming in: only the OPTIONS probes can find out."""
    victim = topology.asterisks["b"]
    assert victim.pid is not None
    since = topology.kamailio.mark()
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    topology.killed.append("b")
    victim.stop()
    try:
        down = topology.kamailio.wait_line(
            rf"dispatcher: {re.escape(topology.uri('b'))} is down", timeout=15, since=since
        )
        down_after: float | None = down.at - killed_at
    except TimeoutError:
        down_after = None
    retried = topology.kamailio.find(r"no answer from .*next Asterisk", since)
    return Outage(down_after, topology.kamailio.dispatcher_flags(), len(retried))


def test_idle_asterisk_killed_the_probes_take_it_out(
    idle_asterisk_killed: Outage, topology: Topology
) -> None:
    outage = idle_asterisk_killed
    assert outage.down_after_s is not None, topology.kamailio.tail()
    assert outage.retried == 0  # no call: the probes found it
    assert outage.flags[topology.uri("b")].startswith("I"), outage.flags
    print(
        f"\ntopology: idle Asterisk b killed; out of the dispatcher set by the probes "
        f"after {outage.down_after_s:.2f} s"
    )


# -- phase 6: the primary database dies -------------------------------------------


@pytest.fixture(scope="module")
def primary_killed(topology: Topology, idle_asterisk_killed: Outage) -> Phase:
    """The primary crashes once the KILL_AFTER-th caller hears its intro; the standby
    is promoted half a second later. The survivors: Asterisk ``a``, sac-ivr
    ``second``."""
    killed_at: list[float] = []

    def kill(index: int, call: ProxiedCall) -> None:
        if index != KILL_AFTER:
            return
        _intro_heard(topology, call, {})
        killed_at.append(time.monotonic())
        topology.database.fail_over()

    phase = _burst(topology, CALLERS, kill)
    phase.events["killed_at"] = killed_at[0] if killed_at else None
    # Numbers given from the outage reserve while no primary answered reach the new
    # primary with the journal's replay: waited for, within a bound.
    callers = {c.call.caller_num for c in phase.callers}
    deadline = time.monotonic() + 30
    while {r["caller_number"] for r in phase.rows} < callers and time.monotonic() < deadline:
        time.sleep(0.2)
        phase.rows = topology.database.rows()
    return phase


def test_primary_database_killed_every_caller_still_hears_a_stored_number(
    primary_killed: Phase, topology: Topology
) -> None:
    phase = primary_killed
    assert phase.events["killed_at"] is not None
    _assert_every_caller_heard_their_stored_number(phase)
    after = [c for c in phase.callers if c.placed > phase.events["killed_at"]]
    assert after, [c.explain() for c in phase.callers]
    _assert_one_ended_call_row_each(topology, phase)  # the call log caught up
