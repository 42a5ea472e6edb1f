"""SIP latency benchmark: what a caller hears, on a real Asterisk, with the real service.

Real SIP calls (SIPp + the test harness's RTP peer) into Asterisk 22 running the
project's dialplan and sounds (tests/asterisk), in two phases of the same run:

* **baseline** — a bare panoramisk FastAGI route on the dialplan's AGI port that
  plays the intro and then the digits of a fixed number: no protocol issued, no
  database, no AMI. What Asterisk + FastAGI cost by themselves.
* **sac-ivr** — the real ``python -m sac_ivr serve`` (SQLite, durable commits; AMI
  enabled as in production unless ``--no-ami``): issues, commits and reads the number.

Per call, from the RTP Asterisk sent (prompts found byte for byte, tests.asterisk.audio):

* **answer -> intro**: the 200 OK reaching the caller (SIPp's message trace) to the
  first RTP packet of ``sac/protocol-intro``. Includes Answer() (Asterisk waits up
  to 500 ms for the caller's first RTP; the harness sends it as soon as it reads
  the SDP answer), the AGI connection, and for sac-ivr issuing + committing the number.
* **intro end -> first digit**: the end of the intro's audio (its last packet's
  arrival + that packet's duration) to the first packet of the first digit: the
  silence the caller hears between the intro and the number (0 ms = back to back).

Calls run ``--parallel`` at a time (default 4), each hung up by the caller shortly
after the first digits. This is a benchmark, not a test: it asserts nothing about time.

    python -m bench.sip_latency [--calls 100] [--parallel 4] [--no-ami]

Needs what the real-Asterisk tests need (root, the chroot, sipp).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import os
import platform
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.asterisk import chroot  # noqa: E402
from tests.asterisk.audio import PromptLibrary  # noqa: E402
from tests.asterisk.instance import AsteriskInstance  # noqa: E402
from tests.asterisk.service import SacIvrService  # noqa: E402
from tests.asterisk.sipp import CallResult, SipCall  # noqa: E402

INTRO = "sac/protocol-intro"
UNAVAILABLE = "sac/protocol-unavailable"
BASELINE_NUMBER = "202611220000015"
TARGET_INTRO_MS = 100.0
TARGET_DIGIT_P99_MS = 150.0
_TRACE_HEADER = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$")


# -- the baseline FastAGI server (its own process, like the service) ----------------------


def serve_baseline(port: int) -> None:
    """A bare panoramisk route: intro, the digits of a fixed number, then the two
    variables the dialplan reads. Prints READY once listening."""
    from panoramisk import fast_agi

    async def protocol(request: fast_agi.Request) -> None:
        await request.send_command('STREAM FILE sac/protocol-intro ""')
        for digit in BASELINE_NUMBER:
            await request.send_command(f'STREAM FILE digits/{digit} ""')
        await request.send_command(f'SET VARIABLE SAC_PROTOCOL "{BASELINE_NUMBER}"')
        await request.send_command('SET VARIABLE SAC_RESULT "OK"')

    async def main() -> None:
        app = fast_agi.Application()
        app.add_route("protocol", protocol)
        server = await asyncio.start_server(app.handler, "127.0.0.1", port, backlog=1024)
        print(f"READY agi={port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class BaselineServer:
    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> BaselineServer:
        with open(self.log, "w") as err:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "bench.sip_latency", "--serve-baseline", str(self.port)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        assert self._proc.stdout is not None
        if not self._proc.stdout.readline().startswith("READY"):
            self._proc.kill()
            raise SystemExit(f"baseline server did not start; see {self.log}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


# -- measuring one call ------------------------------------------------------------------


@dataclass
class Measured:
    caller_num: str
    intro_ms: float | None = None  # answer -> first intro packet
    digit_ms: float | None = None  # intro end -> first packet of the first digit
    digits: str = ""  # digits heard whole
    problem: str | None = None


def answered_at(work_dir: Path) -> float | None:
    """Wall-clock time the caller's SIPp received the INVITE's 200 OK."""
    path = work_dir / "messages.log"
    if not path.is_file():
        return None
    stamp = None
    lines = path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        m = _TRACE_HEADER.match(line)
        if m:
            stamp = m.group(1)
            continue
        if stamp and line.startswith("SIP/2.0 200") and i >= 2 and "received" in lines[i - 2]:
            block = "\n".join(lines[i : i + 15])
            if re.search(r"^CSeq:\s*\d+ INVITE", block, re.MULTILINE):
                return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
    return None


def measure(
    call: SipCall, result: CallResult, prompts: PromptLibrary, wall_minus_mono: float
) -> Measured:
    out = Measured(call.caller_num)
    heard = prompts.find(result.audio)
    out.digits = "".join(
        h.name.removeprefix("digits/") for h in heard if h.name.startswith("digits/") and h.complete
    )
    names = [h.name for h in heard]
    if UNAVAILABLE in names:
        out.problem = "heard protocol-unavailable (no number issued)"
        return out
    intro = next((h for h in heard if h.name == INTRO), None)
    if intro is None or not intro.complete:
        out.problem = (
            f"no whole intro heard: {names} ({len(result.packets)} RTP packets, "
            f"sipp exit {result.returncode}, {result.work_dir})"
        )
        return out
    offsets = [o for o, _ in result.audio_times]
    arrivals = [call.rtp.started + t for _, t in result.audio_times]  # monotonic
    sizes = [b - a for a, b in itertools.pairwise(offsets)]
    sizes.append(len(result.audio) - offsets[-1])

    def packet(offset: int) -> int:
        return max(0, bisect.bisect_right(offsets, offset) - 1)

    answer = answered_at(result.work_dir)
    if answer is not None:
        out.intro_ms = (arrivals[packet(intro.start)] - (answer - wall_minus_mono)) * 1000
    first_digit = next(
        (h for h in heard if h.name.startswith("digits/") and h.start >= intro.end), None
    )
    if first_digit is None:
        out.problem = f"no digit heard after the intro: {names}"
        return out
    last = packet(intro.end - 1)
    intro_end = arrivals[last] + sizes[last] / 8000
    out.digit_ms = (arrivals[packet(first_digit.start)] - intro_end) * 1000
    return out


def run_calls(
    instance: AsteriskInstance,
    prompts: PromptLibrary,
    count: int,
    parallel: int,
    hangup_after: float,
) -> list[Measured]:
    """``count`` calls, ``parallel`` at a time (workers staggered by a fraction of a call)."""
    wall_minus_mono = time.time() - time.monotonic()
    lock = threading.Lock()
    left = [count]
    results: list[Measured] = []

    def worker(index: int) -> None:
        time.sleep(index * hangup_after / max(parallel, 1))
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            call = SipCall(instance, prompts=prompts, hangup_after=hangup_after, timeout=30)
            try:
                result = call.start().wait(40)
            finally:
                call.stop()
            measured = measure(call, result, prompts, wall_minus_mono)
            with lock:
                results.append(measured)

    with ThreadPoolExecutor(parallel) as pool:
        for future in [pool.submit(worker, i) for i in range(parallel)]:
            future.result()
    return results


# -- reporting ---------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = p / 100 * (len(ordered) - 1)  # linear interpolation between closest ranks
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Phase:
    name: str
    calls: list[Measured] = field(default_factory=list)
    seconds: float = 0.0

    def values(self, attr: str) -> list[float]:
        return [v for c in self.calls if (v := getattr(c, attr)) is not None]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def report(phases: list[Phase]) -> None:
    cols = "".join(f"{p.name + ' p50':>17}{p.name + ' p99':>17}" for p in phases)
    print(f"{'':32}{cols}{'max (sac-ivr)':>15}{'target':>22}")
    rows = [
        ("answer -> intro first RTP", "intro_ms", f"<= {TARGET_INTRO_MS:.0f} ms"),
        ("intro end -> 1st digit RTP", "digit_ms", f"p99 <= {TARGET_DIGIT_P99_MS:.0f} ms"),
    ]
    for label, attr, target in rows:
        cells = "".join(
            f"{_ms(percentile(p.values(attr), 50)) + ' ms':>17}"
            f"{_ms(percentile(p.values(attr), 99)) + ' ms':>17}"
            for p in phases
        )
        worst = max(phases[-1].values(attr), default=None)
        print(f"  {label:30}{cells}{_ms(worst) + ' ms':>15}{target:>22}")
    for p in phases:
        measured = len(p.values("digit_ms"))
        problems = [c for c in p.calls if c.problem]
        print(
            f"  {p.name}: {len(p.calls)} calls in {p.seconds:.1f} s, {measured} measured, "
            f"{len(problems)} with a problem"
        )
        for c in problems[:5]:
            print(f"    {c.caller_num}: {c.problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per phase (>= 50)")
    parser.add_argument("--parallel", type=int, default=4, help="calls in progress at once")
    parser.add_argument("--no-ami", action="store_true", help="run sac-ivr without AMI")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, traces)")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_baseline is not None:
        serve_baseline(args.serve_baseline)
        return 0

    print("command:", shlex.join(sys.orig_argv), flush=True)
    reason = chroot.unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    if subprocess.run(["which", "sipp"], capture_output=True).returncode != 0:
        print("cannot run: needs sipp (Debian package sip-tester)", file=sys.stderr)
        return 2

    base = Path(tempfile.mkdtemp(prefix="sac-ivr-sip-bench-"))
    instance = AsteriskInstance(base / "asterisk")
    instance.start()
    try:
        prompts = PromptLibrary(instance.sounds_dir)
        # hang up a little after the first digits: enough for both measurements
        hangup_after = prompts.duration(INTRO) + 1.5
        print(
            f"Asterisk {chroot.asterisk_version()} | sounds: "
            f"{'synthetic stand-ins' if instance.synthetic_sounds else 'project sounds/pt_BR'} | "
            f"{os.cpu_count()} CPUs ({platform.machine()}), shared by Asterisk, SIPp, the "
            f"RTP peers and the AGI server | {args.calls} calls per phase, {args.parallel} "
            f"at a time | sac-ivr: SQLite (WAL, synchronous=FULL) on {base}, "
            f"AMI {'off' if args.no_ami else 'on'} | load average at start: "
            + "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
            flush=True,
        )
        # warm-up call on each server (imports, first connections), not counted
        phases = [Phase("baseline"), Phase("sac-ivr")]
        with BaselineServer(instance.agi_port, base / "baseline.log"):
            run_calls(instance, prompts, 1, 1, hangup_after)
            started = time.monotonic()
            phases[0].calls = run_calls(instance, prompts, args.calls, args.parallel, hangup_after)
            phases[0].seconds = time.monotonic() - started
        env = {"SAC_IVR_LOG_LEVEL": "WARNING"}
        if args.no_ami:
            env["SAC_IVR_AMI_ENABLED"] = "false"
        service = SacIvrService(instance, env=env, name="sac-ivr-bench").start()
        try:
            run_calls(instance, prompts, 1, 1, hangup_after)
            started = time.monotonic()
            phases[1].calls = run_calls(instance, prompts, args.calls, args.parallel, hangup_after)
            phases[1].seconds = time.monotonic() - started
        finally:
            service.stop()
        _check_numbers(phases[1], service)
        log = service.log_text()
        errors = [line for line in log.splitlines() if " ERROR " in line or "locked" in line]
        report(phases)
        print(f"  sac-ivr log: {len(errors)} error line(s)")
        print("  load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        for line in errors[:5]:
            print(f"    {line}")
    finally:
        instance.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", str(base)], check=False)
        else:
            print(f"work dir kept: {base}")
    return 0


def _check_numbers(phase: Phase, service: SacIvrService) -> None:
    """Each caller's digits heard must begin its stored number (else: a problem)."""
    with sqlite3.connect(f"file:{service.database_path}?mode=ro", uri=True) as db:
        stored = dict(db.execute("SELECT caller_number, number FROM protocols"))
    for call in phase.calls:
        number = stored.get(call.caller_num)
        if call.problem is None and (
            number is None or not call.digits or not number.startswith(call.digits)
        ):
            call.problem = f"heard {call.digits!r}, stored {number!r}"


if __name__ == "__main__":
    raise SystemExit(main())
