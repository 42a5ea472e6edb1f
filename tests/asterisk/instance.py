"""A real Asterisk for the tests: fresh config and var dirs, run from the chroot.

The process runs in a private mount namespace (``unshare -m``) and ``chroot``s into
the cached Debian root (see :mod:`tests.asterisk.chroot`). The instance's base dir
(config + var) and the project dir are bind-mounted at the SAME absolute paths
inside, so every path in the configs (the ``#include`` of the project's dialplan,
recordings, sounds) means the same inside and outside. All mounts vanish with the
process, even after SIGKILL.

The project's ``dialplan/extensions_sac.conf`` is included UNCHANGED; the test
``extensions.conf`` only sets the ``[globals]`` it reads and adds ``sac-test-*``
helper contexts. ``modules.conf`` and ``musiconhold.conf`` are the project's
samples, unchanged: the tests run with exactly the modules the README documents.
"""

from __future__ import annotations

import contextlib
import os
import random
import shlex
import signal
import socket
import subprocess
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.asterisk import chroot

PROJECT_DIR = Path(__file__).resolve().parents[2]
ASTERISK_BIN = "/usr/sbin/asterisk"
MODULE_DIR = "/usr/lib/x86_64-linux-gnu/asterisk/modules"  # replaced by the chroot's own

# Asterisk loads exactly the modules of the project's dialplan/modules.conf.sample
# (written unchanged as modules.conf): the list the README documents, no more. A
# module the tests need is documented there, with why.
MODULES_SAMPLE = "dialplan/modules.conf.sample"
# Music on hold: the project's class, unchanged (it plays sounds/pt_BR/sac-hold/).
MUSICONHOLD_SAMPLE = "dialplan/musiconhold.conf.sample"

# Config files that only need to exist (silences "Unable to load config file").
STUB_CONFIGS = {
    "cdr.conf": "[general]\nenable=no\n",
    "cel.conf": "[general]\nenable=no\n",
    "features.conf": "",
    "ccss.conf": "",
    "acl.conf": "",
    "udptl.conf": "",
    "pjproject.conf": "",
    "stasis.conf": "",
    "indications.conf": "[general]\ncountry = br\n\n[br]\ndescription = Brazil\n"
    "ringcadence = 1000,4000\ndial = 425\nbusy = 425/250,0/250\nring = 425/1000,0/4000\n"
    "congestion = 425/250,0/250,425/750,0/250\ncallwaiting = 425/50,0/1000\n",
    "codecs.conf": "",
    "ari.conf": "",
    "http.conf": "[general]\nenabled=no\n",
    "res_stun_monitor.conf": "",
    "dnsmgr.conf": "",
    "cli.conf": "",
    "cli_permissions.conf": "",
    "sorcery.conf": "",
    "asterisk_mix.conf": "",
}

# Every prompt the dialplan and the AGI routes play (sounds/pt_BR/, no extension).
PROMPTS = (
    *(f"digits/{d}" for d in "0123456789"),
    "sac/protocol-intro",
    "sac/protocol-outro",
    "sac/protocol-repeat-offer",
    "sac/protocol-sms-offer",
    "sac/protocol-sms-sent",
    "sac/protocol-unavailable",
    "sac/pause",
    "sac/menu-main",
    "sac/menu-complaint",
    "sac/menu-cancellation",
    "sac/menu-information",
    "sac/menu-invalid",
    "sac/cancellation-registered",
    "sac/transfer-attendant",
    "sac/queue-wait",
    "sac/agent-whisper",
)

AMI_USER = "sac-test"
AMI_SECRET = "sac-test-secret"
# The service's AMI user, exactly as dialplan/manager.conf.sample grants it.
SERVICE_AMI_USER = "sac-ivr"
SERVICE_AMI_SECRET = "sac-ivr-test-secret"
CALLER_ENDPOINT = "sac-test-caller"
AGENT_ENDPOINTS = ("sac-agent-1", "sac-agent-2")


class AsteriskError(RuntimeError):
    pass


# -- ports -----------------------------------------------------------------------------


def _port_free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel says is free now (TCP or UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_range(size: int, low: int = 20000, high: int = 30000) -> tuple[int, int]:
    """An even-started range of ``size`` consecutive free UDP ports."""
    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(low, high - size) & ~1
        if all(_port_free(p, socket.SOCK_DGRAM) for p in range(start, start + size)):
            return start, start + size - 1
    raise AsteriskError(f"no {size} free consecutive UDP ports in {low}-{high}")


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


@dataclass(frozen=True)
class Ports:
    """Every port one instance uses. Defaults are picked free at start-up, so two runs
    on one machine don't collide; each can be forced with an environment variable."""

    ami: int
    sip: int
    agi: int
    rtp_start: int
    rtp_end: int
    agents: tuple[int, ...]

    @classmethod
    def from_env(cls) -> Ports:
        rtp_start = _env_int("SAC_IVR_TEST_RTP_START")
        rtp_end = _env_int("SAC_IVR_TEST_RTP_END")
        if rtp_start is None:
            rtp_start, rtp_end = free_udp_range(200)
        elif rtp_end is None:
            rtp_end = rtp_start + 199
        agents = tuple(
            _env_int(f"SAC_IVR_TEST_AGENT{i}_SIP_PORT") or free_port(socket.SOCK_DGRAM)
            for i in range(1, len(AGENT_ENDPOINTS) + 1)
        )
        return cls(
            ami=_env_int("SAC_IVR_TEST_AMI_PORT") or free_port(),
            sip=_env_int("SAC_IVR_TEST_SIP_PORT") or free_port(socket.SOCK_DGRAM),
            agi=_env_int("SAC_IVR_TEST_AGI_PORT") or free_port(),
            rtp_start=rtp_start,
            rtp_end=rtp_end,
            agents=agents,
        )


# -- sounds ----------------------------------------------------------------------------


def prompt_names(project_dir: Path = PROJECT_DIR) -> tuple[str, ...]:
    """Prompt names from sounds/manifest.toml (plus the ones the harness relies on)."""
    names = list(PROMPTS)
    manifest = project_dir / "sounds" / "manifest.toml"
    if manifest.is_file():
        data = tomllib.loads(manifest.read_text())
        names += [n for n in data.get("prompts", {}) if n not in names]
    return tuple(names)


def missing_project_prompts(project_dir: Path = PROJECT_DIR) -> list[str]:
    base = project_dir / "sounds" / "pt_BR"
    return [n for n in prompt_names(project_dir) if not (base / f"{n}.ulaw").is_file()]


def write_synthetic_prompts(target: Path, names: tuple[str, ...] = PROMPTS) -> Path:
    """Stand-in prompts: short, distinct pseudo-random µ-law, one ``.ulaw`` per name.

    Used only while the project's recordings are missing, so the harness and the
    dialplan can be tested anyway; the bytes are unique per name, which is all the
    matcher needs. ``sac/pause`` stays real silence.
    """
    for name in names:
        path = target / f"{name}.ulaw"
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "sac/pause":
            path.write_bytes(b"\xff" * 2800)
            continue
        rng = random.Random(name)
        seconds = 0.3 if name.startswith("digits/") else 0.8
        # no 0x00/0x7f/0xff: they don't survive a µ-law -> linear -> µ-law trip unchanged
        pool = bytes(b for b in range(256) if b not in (0x00, 0x7F, 0xFF))
        path.write_bytes(bytes(rng.choice(pool) for _ in range(int(8000 * seconds))))
    return target


def sample_section(path: Path, section: str) -> list[str]:
    """The lines of ``[section]`` in an Asterisk config file (comments dropped)."""
    out: list[str] = []
    inside = False
    for raw in path.read_text().splitlines():
        line = raw.split(";", 1)[0].rstrip()
        if line.startswith("["):
            inside = line.split("]", 1)[0] == f"[{section}"
            continue
        if inside and line.strip():
            out.append(line.strip())
    if not out:
        raise AsteriskError(f"{path}: no section [{section}]")
    return out


def choose_sounds(base_dir: Path, project_dir: Path = PROJECT_DIR) -> tuple[Path, bool]:
    """The pt_BR folder Asterisk gets, and whether it is the synthetic stand-in.

    ``SAC_IVR_TEST_SOUNDS``: ``project`` (fail if a prompt is missing), ``synthetic``,
    or ``auto`` (default: the project's if complete, else the stand-in).
    """
    mode = os.environ.get("SAC_IVR_TEST_SOUNDS", "auto").strip().lower() or "auto"
    missing = missing_project_prompts(project_dir)
    if mode == "project" or (mode == "auto" and not missing):
        if missing:
            raise AsteriskError(
                f"SAC_IVR_TEST_SOUNDS=project but sounds/pt_BR lacks .ulaw for: {missing}"
            )
        return project_dir / "sounds" / "pt_BR", False
    return write_synthetic_prompts(base_dir / "synthetic-sounds" / "pt_BR", prompt_names()), True


# -- the instance ----------------------------------------------------------------------


@dataclass
class AsteriskInstance:
    """One Asterisk process with its own config and var dirs under ``base_dir``.

    ``dialplan_globals`` override the ``[globals]`` written for the test (the defaults
    point the dialplan at this instance's AGI port and make menus quick).
    """

    base_dir: Path
    project_dir: Path = PROJECT_DIR
    ports: Ports = field(default_factory=Ports.from_env)
    dialplan_globals: Mapping[str, str] = field(default_factory=dict)
    root: Path | None = None
    # asterisk.conf ``systemname``: prefixes every uniqueid/linkedid, so that calls of
    # several servers never share one (None: not set, as before)
    system_name: str | None = None
    pid: int | None = field(default=None, init=False)
    sounds_dir: Path = field(default=Path(), init=False)
    synthetic_sounds: bool = field(default=False, init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).resolve()
        self.project_dir = Path(self.project_dir).resolve()
        self.config_dir = self.base_dir / "etc"
        self.var_dir = self.base_dir / "var"
        self.log_dir = self.var_dir / "log"
        self.recordings_dir = self.var_dir / "recordings"
        self.work_dir = self.base_dir / "work"  # SIPp scenarios, captures, service logs

    # -- facts tests need
    @property
    def ami_host(self) -> str:
        return "127.0.0.1"

    @property
    def ami_user(self) -> str:
        return AMI_USER

    @property
    def ami_secret(self) -> str:
        return AMI_SECRET

    @property
    def agi_port(self) -> int:
        return self.ports.agi

    @property
    def sip_port(self) -> int:
        return self.ports.sip

    @property
    def full_log(self) -> Path:
        return self.log_dir / "full"

    @property
    def globals(self) -> dict[str, str]:
        values = {
            "SAC_AGI_HOST": "127.0.0.1",
            "SAC_AGI_PORT": str(self.ports.agi),
            "SAC_QUEUE": "sac-agents",
            "SAC_PANEL_URL": "http://127.0.0.1:8080",
            "SAC_MENU_TIMEOUT": "2",
            "SAC_MENU_TRIES": "3",
        }
        values.update(self.dialplan_globals)
        return values

    @property
    def service_ami_user(self) -> str:
        return SERVICE_AMI_USER

    @property
    def service_ami_secret(self) -> str:
        return SERVICE_AMI_SECRET

    def sac_ivr_env(self) -> dict[str, str]:
        """Environment for ``sac-ivr serve`` talking to this instance: FastAGI on the
        port the dialplan calls, AMI as the ``sac-ivr`` user of manager.conf.sample."""
        return {
            "SAC_IVR_AGI_HOST": "127.0.0.1",
            "SAC_IVR_AGI_PORT": str(self.ports.agi),
            "SAC_IVR_AMI_ENABLED": "true",
            "SAC_IVR_AMI_HOST": self.ami_host,
            "SAC_IVR_AMI_PORT": str(self.ports.ami),
            "SAC_IVR_AMI_USERNAME": self.service_ami_user,
            "SAC_IVR_AMI_SECRET": self.service_ami_secret,
        }

    # -- configuration
    def _module_dir(self, root: Path) -> str:
        conf = root / "etc" / "asterisk" / "asterisk.conf"
        for line in conf.read_text().splitlines() if conf.is_file() else []:
            key, _, value = line.partition("=>")
            if key.strip() == "astmoddir" and value.strip():
                return value.strip()
        return MODULE_DIR

    def write_config(self, root: Path) -> None:
        """Write every config file (the instance's own; nothing in the project)."""
        etc, var = self.config_dir, self.var_dir
        for d in (etc, var, self.log_dir, self.recordings_dir, self.work_dir):
            d.mkdir(parents=True, exist_ok=True)
        for sub in ("lib", "spool", "run", "cache", "data/sounds", "agi-bin"):
            (var / sub).mkdir(parents=True, exist_ok=True)
        self.sounds_dir, self.synthetic_sounds = choose_sounds(self.base_dir, self.project_dir)
        data = var / "data"
        # astdatadir: the package's documentation, our pt_BR folder (resolved in the chroot)
        for link, target in (
            (data / "documentation", Path("/usr/share/asterisk/documentation")),
            (data / "sounds" / "pt_BR", self.sounds_dir),
        ):
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)

        files: dict[str, str] = dict(STUB_CONFIGS)
        files["asterisk.conf"] = f"""[directories]
astetcdir => {etc}
astmoddir => {self._module_dir(root)}
astvarlibdir => {var}/lib
astdbdir => {var}/lib
astkeydir => {var}/lib
astdatadir => {data}
astagidir => {var}/agi-bin
astspooldir => {var}/spool
astrundir => {var}/run
astlogdir => {self.log_dir}
astcachedir => {var}/cache
astsbindir => /usr/sbin

[options]
verbose = 3
debug = 0
nocolor = yes
defaultlanguage = pt_BR
documentation_language = en_US
hideconnect = yes
transmit_silence = no
"""
        if self.system_name:
            files["asterisk.conf"] += f"systemname = {self.system_name}\n"
        files["modules.conf"] = (self.project_dir / MODULES_SAMPLE).read_text()
        files["musiconhold.conf"] = (self.project_dir / MUSICONHOLD_SAMPLE).read_text()
        files["logger.conf"] = """[general]
dateformat = %F %T.%3q
[logfiles]
messages => notice,warning,error
full => notice,warning,error,verbose,dtmf
"""
        files["manager.conf"] = f"""[general]
enabled = yes
bindaddr = 127.0.0.1
port = {self.ports.ami}
displayconnects = no
timestampevents = yes

[{AMI_USER}]
secret = {AMI_SECRET}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all

; the service's user, from dialplan/manager.conf.sample (only the secret differs)
[{SERVICE_AMI_USER}]
{self._service_ami_section()}
"""
        files["rtp.conf"] = f"""[general]
rtpstart = {self.ports.rtp_start}
rtpend = {self.ports.rtp_end}
"""
        files["pjsip.conf"] = self._pjsip_conf()
        # The queue exactly as dialplan/queues.conf.sample defines it; members are
        # added by the tests (AMI QueueAdd) when an agent UAS is listening.
        queue = sample_section(self.project_dir / "dialplan" / "queues.conf.sample", "sac-agents")
        queue = [line for line in queue if not line.startswith("member")]
        files["queues.conf"] = (
            "[general]\npersistentmembers = no\nshared_lastcall = yes\n\n[sac-agents]\n"
            + "".join(f"{line}\n" for line in queue)
        )
        globals_ = "".join(f"{k} = {v}\n" for k, v in self.globals.items())
        files["extensions.conf"] = f"""[general]
static = yes
writeprotect = yes
clearglobalvars = yes

[globals]
{globals_}
#include "{self.project_dir}/dialplan/extensions_sac.conf"

; -- test helpers (sac-test-*) --------------------------------------------------------
; AMI Originate: Channel=Local/s@sac-test-record (Codecs=ulaw) records what the
; caller hears (MixMonitor to SAC_TEST_RECORDING) and enters sac-entry.
[sac-test-record]
exten => _[0-9a-z]!,1,GotoIf($[${{LEN(${{SAC_TEST_RECORDING}})}} = 0]?enter)
 same => n,MixMonitor(${{SAC_TEST_RECORDING}})
 same => n(enter),Goto(sac-entry,${{EXTEN}},1)

; The caller's half of that Local channel: waits, may press keys, hangs up.
; Variables: SAC_TEST_DTMF (keys, "w" = 0.5 s pause), SAC_TEST_DTMF_AFTER (s),
; SAC_TEST_DURATION (s).
[sac-test-listener]
exten => s,1,Wait(${{IF($[${{LEN(${{SAC_TEST_DTMF_AFTER}})}} > 0]?${{SAC_TEST_DTMF_AFTER}}:0)}})
 same => n,ExecIf($[${{LEN(${{SAC_TEST_DTMF}})}} > 0]?SendDTMF(${{SAC_TEST_DTMF}}))
 same => n,Wait(${{IF($[${{LEN(${{SAC_TEST_DURATION}})}} > 0]?${{SAC_TEST_DURATION}}:30)}})
 same => n,Hangup()
"""
        for name, text in files.items():
            (etc / name).write_text(text)

    def _service_ami_section(self) -> str:
        lines = sample_section(self.project_dir / "dialplan" / "manager.conf.sample", "sac-ivr")
        lines = [
            f"secret = {SERVICE_AMI_SECRET}" if line.split("=")[0].strip() == "secret" else line
            for line in lines
        ]
        return "\n".join(lines)

    def _pjsip_conf(self) -> str:
        media = """disallow = all
allow = ulaw
direct_media = no
rtp_symmetric = yes
force_rport = yes
rewrite_contact = yes
media_address = 127.0.0.1
bind_rtp_to_media_address = yes
dtmf_mode = rfc4733
"""
        parts = [
            f"""[global]
type = global
user_agent = sac-ivr-test-asterisk

[transport-udp]
type = transport
protocol = udp
bind = 127.0.0.1:{self.ports.sip}

; The "trunk": any INVITE from 127.0.0.1 (SIPp callers) enters sac-entry.
[{CALLER_ENDPOINT}]
type = endpoint
transport = transport-udp
context = sac-entry
{media}
[{CALLER_ENDPOINT}-identify]
type = identify
endpoint = {CALLER_ENDPOINT}
match = 127.0.0.1
"""
        ]
        for name, port in zip(AGENT_ENDPOINTS, self.ports.agents, strict=True):
            parts.append(
                f"""
; Agent phone: a SIPp UAS on 127.0.0.1:{port} (add it to the queue with QueueAdd).
[{name}]
type = endpoint
transport = transport-udp
context = sac-test-agent-out
aors = {name}
{media}
[{name}]
type = aor
contact = sip:{name}@127.0.0.1:{port}
max_contacts = 1
"""
            )
        return "".join(parts)

    # -- process
    def _mount_script(self, root: Path) -> str:
        q = shlex.quote
        lines = ["set -e", f"mount -t proc proc {q(str(root / 'proc'))}"]
        # Mountpoints under /tmp live on a namespace-private tmpfs (nothing left behind).
        if str(self.base_dir).startswith("/tmp/"):
            lines.append(f"mount -t tmpfs -o mode=1777 tmpfs {q(str(root / 'tmp'))}")
        # The project first (read-only), then the base dir, which may lie inside it.
        mounts = ((self.project_dir, True), (self.base_dir, False))
        lines += [f"mkdir -p {q(str(root) + str(path))}" for path, _ in mounts]
        for path, ro in mounts:
            inside = q(str(root) + str(path))
            lines.append(f"mount --bind {q(str(path))} {inside}")
            if ro:
                lines.append(f"mount -o remount,bind,ro {inside}")
        conf = q(f"{self.config_dir}/asterisk.conf")
        lines.append(f"exec chroot {q(str(root))} {ASTERISK_BIN} -f -C {conf}")
        return "\n".join(lines)

    def start(self, timeout: float = 30.0) -> None:
        """Write the configs, start Asterisk and wait until it is FullyBooted."""
        if self._proc is not None:
            raise AsteriskError("already started")
        root = self.root or chroot.ensure_chroot()
        self.root = root
        self.write_config(root)
        console = open(self.log_dir / "console.log", "ab")  # the child keeps it
        self._proc = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                self._mount_script(root),
            ],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        console.close()
        self.pid = self._proc.pid
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AsteriskError(
                    f"Asterisk exited with {self._proc.returncode} while starting; "
                    f"logs in {self.log_dir}:\n{self.log_tail()}"
                )
            try:
                left = max(1.0, deadline - time.monotonic())
                out = self.cli("core waitfullybooted", timeout=left)
                if "fully booted" in out.lower():
                    return
                last = out
            except (AsteriskError, subprocess.TimeoutExpired) as exc:
                last = str(exc)
            time.sleep(0.05)
        self.stop()
        raise AsteriskError(
            f"Asterisk not FullyBooted within {timeout}s ({last}); logs in {self.log_dir}"
        )

    def cli(self, command: str, timeout: float = 10.0) -> str:
        """Run one CLI command in the running instance (``asterisk -rx`` via nsenter)."""
        if self.pid is None:
            raise AsteriskError("not running")
        proc = subprocess.run(
            [
                "nsenter",
                "-t",
                str(self.pid),
                "-m",
                "-r",
                "-w",
                ASTERISK_BIN,
                "-C",
                f"{self.config_dir}/asterisk.conf",
                "-rx",
                command,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        out = proc.stdout.decode("utf-8", "replace")
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace")
            raise AsteriskError(f"CLI {command!r} failed ({proc.returncode}): {out}{err}")
        return out

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds. Mounts go with the process."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        self.pid = None

    def log_tail(self, lines: int = 60) -> str:
        """The end of the full log and the console output, for failure messages."""
        out = []
        for path in (self.log_dir / "console.log", self.full_log):
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(out)

    def __enter__(self) -> AsteriskInstance:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
