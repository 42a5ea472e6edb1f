"""Build (once) a Debian chroot that holds Debian's ``asterisk`` package.

bookworm and trixie ship no Asterisk and installing testing's into the host would
upgrade libc, so the tests run Asterisk from a small ``mmdebstrap`` chroot of Debian
testing (``forky``, falling back to ``sid``). The chroot lives outside the repository,
in ``SAC_IVR_ASTERISK_ROOT`` (default ``/var/cache/sac-ivr/asterisk-root``), and is
built once: a marker file written after a successful build makes later calls free.

CI can pre-build it with ``python -m tests.asterisk.chroot``.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_ROOT = Path("/var/cache/sac-ivr/asterisk-root")
ROOT_ENV = "SAC_IVR_ASTERISK_ROOT"
MIRROR_ENV = "SAC_IVR_DEBIAN_MIRROR"
SUITES_ENV = "SAC_IVR_ASTERISK_SUITES"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITES = ("forky", "sid")
MARKER = ".sac-ivr-asterisk-ready"
ASTERISK_BIN = "/usr/sbin/asterisk"
# Packages the chroot needs besides the essential set. asterisk-modules comes with
# asterisk; nothing else is needed (no sounds: the project brings its own).
PACKAGES = ("asterisk",)


class ChrootUnavailable(RuntimeError):
    """This machine cannot build or run the Asterisk chroot (the message says why)."""


def root_dir() -> Path:
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def marker_path(root: Path | None = None) -> Path:
    return (root or root_dir()) / MARKER


def is_ready(root: Path | None = None) -> bool:
    root = root or root_dir()
    return marker_path(root).is_file() and (root / ASTERISK_BIN.lstrip("/")).is_file()


def unavailable_reason() -> str | None:
    """Why this machine can't run the real-Asterisk tests, or None if it can.

    Checks only what the harness needs: root (mounts, chroot), the util-linux tools
    and, unless the chroot is already built, mmdebstrap on a Debian host.
    """
    if sys.platform != "linux":
        return f"real Asterisk tests need Linux (this is {platform.system()})"
    if os.geteuid() != 0:
        return "real Asterisk tests need root (mount namespaces and chroot)"
    for tool in ("unshare", "nsenter", "chroot", "mount"):
        if shutil.which(tool) is None:
            return f"real Asterisk tests need {tool} (Debian package util-linux/coreutils)"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return "real Asterisk tests need mount namespaces (unshare -m failed: no CAP_SYS_ADMIN?)"
    if is_ready():
        return None
    if not Path("/etc/debian_version").is_file():
        return "real Asterisk tests need a Debian host to build the chroot"
    if shutil.which("mmdebstrap") is None:
        return "real Asterisk tests need mmdebstrap (apt-get install mmdebstrap)"
    return None


def _mmdebstrap_cmd(suite: str, target: Path, mirror: str) -> list[str]:
    return [
        "mmdebstrap",
        "--mode=root",
        "--variant=essential",
        "--include=" + ",".join(PACKAGES),
        # Snapshot/mirror Release files can be past Valid-Until; apt refuses them otherwise.
        '--aptopt=Acquire::Check-Valid-Until "false"',
        '--aptopt=APT::Install-Recommends "false"',
        "--dpkgopt=force-unsafe-io",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-exclude=/usr/share/info/*",
        suite,
        str(target),
        mirror,
    ]


def _finish(root: Path) -> None:
    """Make the chroot usable offline: no DNS, the host's /etc/hosts."""
    (root / "etc" / "resolv.conf").unlink(missing_ok=True)
    (root / "etc" / "resolv.conf").write_text("")
    shutil.copyfile("/etc/hosts", root / "etc" / "hosts")
    # Directories the instance bind-mounts onto (created per run under these paths).
    for sub in ("proc",):
        (root / sub).mkdir(exist_ok=True)


def asterisk_version(root: Path | None = None) -> str:
    root = root or root_dir()
    m = marker_path(root)
    return m.read_text().strip() if m.is_file() else ""


def ensure_chroot(*, verbose: bool = False) -> Path:
    """Return the chroot path, building it first if needed (idempotent, locked).

    Raises :class:`ChrootUnavailable` when the machine can't build it.
    """
    root = root_dir()
    if is_ready(root):
        return root
    reason = unavailable_reason()
    if reason:
        raise ChrootUnavailable(reason)
    root.parent.mkdir(parents=True, exist_ok=True)
    lock_path = root.parent / (root.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it
        if is_ready(root):
            return root
        mirror = os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR
        suites = tuple((os.environ.get(SUITES_ENV) or "").split()) or DEFAULT_SUITES
        errors: list[str] = []
        for suite in suites:
            tmp = root.parent / (root.name + ".building")
            if tmp.exists():
                shutil.rmtree(tmp)
            cmd = _mmdebstrap_cmd(suite, tmp, mirror)
            started = time.monotonic()
            if verbose:
                print("+", " ".join(cmd), file=sys.stderr, flush=True)
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=None if verbose else subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            if proc.returncode != 0 or not (tmp / ASTERISK_BIN.lstrip("/")).is_file():
                tail = (proc.stdout or "")[-2000:]
                errors.append(f"{suite}: mmdebstrap exit {proc.returncode}\n{tail}")
                shutil.rmtree(tmp, ignore_errors=True)
                continue
            _finish(tmp)
            version = subprocess.run(
                ["chroot", str(tmp), "dpkg-query", "-W", "-f=${Version}", "asterisk"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            if root.exists():
                shutil.rmtree(root)
            tmp.rename(root)
            marker_path(root).write_text(
                f"suite={suite} asterisk={version} built_in={time.monotonic() - started:.1f}s\n"
            )
            return root
        raise ChrootUnavailable("could not build the Asterisk chroot:\n" + "\n".join(errors))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="delete and build again")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    root = root_dir()
    if args.rebuild and root.exists():
        marker_path(root).unlink(missing_ok=True)
        shutil.rmtree(root)
    started = time.monotonic()
    try:
        ensure_chroot(verbose=not args.quiet)
    except ChrootUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{root}: {asterisk_version(root)} (ready in {time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
