"""A real Kamailio (Debian package ``kamailio``) in front of test Asterisk servers.

:class:`Kamailio` runs the project's ``dialplan/kamailio.cfg.sample`` with only its
four ``#!substdef`` values changed (listen address and port, the dispatcher list,
the folder of the kamcmd socket), in the foreground, logging to stderr; a reader
thread stamps every log line with ``time.monotonic()`` on arrival, so a test can
tell when the dispatcher took a server out.

:class:`ProxiedCall` is a :class:`~tests.asterisk.sipp.SipCall` sent to the proxy
instead of an Asterisk: its scenario keeps the route set of the 200 OK
(``rrs="true"``) and sends the ACK and its own BYE to the dialog's remote target
through the proxy (``[next_url]``, ``[routes]``), as a phone behind a proxy does.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.asterisk.instance import PROJECT_DIR, free_port
from tests.asterisk.sipp import SipCall

SAMPLE = PROJECT_DIR / "dialplan" / "kamailio.cfg.sample"
DISPATCHER_SAMPLE = PROJECT_DIR / "dialplan" / "dispatcher.list.sample"
KAMAILIO_BIN = "/usr/sbin/kamailio"
SET = 1  # the dispatcher set of the Asterisk servers, as in the sample


class KamailioError(RuntimeError):
    pass


def unavailable_reason() -> str | None:
    if shutil.which("kamailio") is None and not Path(KAMAILIO_BIN).is_file():
        return "the topology test needs Kamailio (Debian package kamailio)"
    if shutil.which("kamcmd") is None:
        return "the topology test needs kamcmd (Debian package kamailio)"
    return None


def _substdef(text: str, name: str, value: str) -> str:
    """Set the value of the sample's ``#!substdef "!NAME!value!g"`` line."""
    pattern = re.compile(rf'^#!substdef "!{name}![^!]*!g"$', re.M)
    if len(pattern.findall(text)) != 1:
        raise KamailioError(f"{SAMPLE}: no single #!substdef for {name}")
    return pattern.sub(f'#!substdef "!{name}!{value}!g"', text)


def config_from_sample(
    sample: str, *, address: str, port: int, dispatcher_list: Path, run_dir: Path
) -> str:
    """The sample with its four values set, nothing else changed."""
    text = _substdef(sample, "LISTEN_ADDR", address)
    text = _substdef(text, "LISTEN_PORT", str(port))
    text = _substdef(text, "DISPATCHER_LIST", str(dispatcher_list))
    return _substdef(text, "RUN_DIR", str(run_dir))


def dispatcher_list(destinations: Sequence[str]) -> str:
    """The list file: the sample's comments, then one line per destination (set 1,
    flag 8: probed from the start)."""
    comments = [line for line in DISPATCHER_SAMPLE.read_text().splitlines() if line.startswith("#")]
    return "\n".join([*comments, *(f"{SET} {uri} 8" for uri in destinations)]) + "\n"


@dataclass(frozen=True)
class LogLine:
    at: float  # time.monotonic() when the line was read
    text: str


class Kamailio:
    """One Kamailio process on 127.0.0.1:``port`` (UDP) dispatching to ``destinations``
    (SIP URIs, ``sip:127.0.0.1:5060``)."""

    def __init__(self, base_dir: Path, destinations: Sequence[str], port: int | None = None):
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.destinations = list(destinations)
        self.port = port or free_port(socket.SOCK_DGRAM)
        self.config = self.base_dir / "kamailio.cfg"
        self.list_file = self.base_dir / "dispatcher.list"
        self.log_path = self.base_dir / "kamailio.log"
        self.lines: list[LogLine] = []
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def ctl(self) -> str:
        return f"unix:{self.base_dir}/kamailio_ctl"

    def write_config(self) -> None:
        self.list_file.write_text(dispatcher_list(self.destinations))
        self.config.write_text(
            config_from_sample(
                SAMPLE.read_text(),
                address="127.0.0.1",
                port=self.port,
                dispatcher_list=self.list_file,
                run_dir=self.base_dir,
            )
        )

    def start(self, timeout: float = 15.0) -> Kamailio:
        """Check the config (``kamailio -c``), start it, wait until kamcmd answers."""
        self.write_config()
        check = subprocess.run(
            [KAMAILIO_BIN, "-c", "-f", str(self.config)],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if check.returncode != 0:
            raise KamailioError(f"kamailio -c: {check.stderr.decode(errors='replace')[-2000:]}")
        self._proc = subprocess.Popen(
            [
                KAMAILIO_BIN,
                *("-f", str(self.config)),
                "-DD",  # foreground, no daemon
                "-E",  # log to stderr
                *("-P", str(self.base_dir / "kamailio.pid")),
                *("-m", "64", "-M", "8"),  # shared and private memory (MB)
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise KamailioError(f"kamailio exited with {self._proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(KamailioError, subprocess.TimeoutExpired):
                if len(self.dispatcher_flags()) == len(self.destinations):
                    return self
            time.sleep(0.1)
        self.stop()
        raise KamailioError(f"kamailio not answering kamcmd within {timeout}s:\n{self.tail()}")

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        with open(self.log_path, "ab") as log:
            for raw in self._proc.stderr:
                log.write(raw)
                log.flush()
                with self._cond:
                    self.lines.append(LogLine(time.monotonic(), raw.decode(errors="replace")))
                    self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def find(self, pattern: str, since: int = 0) -> list[LogLine]:
        with self._cond:
            return [line for line in self.lines[since:] if re.search(pattern, line.text)]

    def wait_line(self, pattern: str, *, timeout: float, since: int = 0) -> LogLine:
        """The first log line from index ``since`` on matching ``pattern``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[since:]:
                    if re.search(pattern, line.text):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no Kamailio log line matching {pattern!r} in {timeout}s")
                self._cond.wait(left)

    def kamcmd(self, *command: str) -> str:
        done = subprocess.run(
            ["kamcmd", "-s", self.ctl, *command], capture_output=True, timeout=10, check=False
        )
        if done.returncode != 0:
            raise KamailioError(f"kamcmd {command}: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode(errors="replace")

    def dispatcher_flags(self) -> dict[str, str]:
        """Each destination's flags as ``kamcmd dispatcher.list`` shows them: ``AP``
        (active, probed), ``IP`` (inactive, probed)..."""
        out = self.kamcmd("dispatcher.list")
        return dict(re.findall(r"URI:\s*(\S+)\s+FLAGS:\s*(\S+)", out))

    def tail(self, lines: int = 40) -> str:
        with self._cond:
            return "".join(line.text for line in self.lines[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._reader is not None:
            self._reader.join(5)

    def __enter__(self) -> Kamailio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# The dialog's requests after the INVITE go to its remote target through the route
# set (Record-Route of the 200 OK); SIPp sends every message to the proxy anyway.
_REQUEST_LINE = re.compile(r"^(\s*)(ACK|BYE) sip:\[service\]@\[remote_ip\]:\[remote_port\]", re.M)
_CSEQ = re.compile(r"^(\s*)CSeq: (\d+) (ACK|BYE)$", re.M)


def proxied_scenario(text: str) -> str:
    """``uac.xml`` for a caller behind a proxy (see the module docstring)."""
    out = text.replace(
        '<recv response="200" rtd="true">', '<recv response="200" rtd="true" rrs="true">'
    )
    out = _REQUEST_LINE.sub(r"\1\2 [next_url]", out)
    out = _CSEQ.sub(lambda m: f"{m[0]}\n{m[1]}[routes]", out)
    if out.count("[next_url]") != 2 or out.count("[routes]") != 2 or 'rrs="true"' not in out:
        raise KamailioError("uac.xml changed: the proxied scenario needs a new rewrite")
    return out


class ProxiedCall(SipCall):
    """A :class:`SipCall` sent to ``proxy`` (host, port) rather than to its instance,
    which only gives the call its work folder."""

    def __init__(self, *args: object, proxy: tuple[str, int], **kwargs: object) -> None:
        self.proxy = proxy
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def command(self) -> list[str]:
        command = super().command()
        scenario = self.work_dir / "uac.xml"
        scenario.write_text(proxied_scenario(scenario.read_text()))
        target = f"127.0.0.1:{self.instance.sip_port}"
        if command[1] != target:
            raise KamailioError(f"SipCall.command() changed: {command[:2]}")
        command[1] = f"{self.proxy[0]}:{self.proxy[1]}"
        return command
