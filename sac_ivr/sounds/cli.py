"""``sac-ivr sounds build``: regenerate the voice prompts from the manifest.

Wire into the main argparse CLI with ``sac_ivr.sounds.cli.add_parser(subparsers)``;
the parser's ``func`` takes the Namespace and returns an exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from sac_ivr.sounds.build import ENGINES, SoundsBuildError, build_sounds
from sac_ivr.sounds.manifest import ManifestError

__all__ = ["add_parser", "default_paths", "run_build"]

MANIFEST_REL = Path("sounds/manifest.toml")
OUT_REL = Path("sounds/pt_BR")


def default_paths(start: Path | None = None) -> tuple[Path, Path]:
    """(manifest, out dir) of the repo containing ``start`` (default: the cwd).

    Looks for ``sounds/manifest.toml`` in ``start`` and its parents; falls back
    to paths relative to ``start``.
    """
    start = (start or Path.cwd()).resolve()
    for base in (start, *start.parents):
        if (base / MANIFEST_REL).is_file():
            return base / MANIFEST_REL, base / OUT_REL
    return start / MANIFEST_REL, start / OUT_REL


def add_parser(subparsers: argparse._SubParsersAction, commands: object = None) -> None:
    """Register ``sounds build`` on the main CLI's subparsers (it needs no settings:
    ``commands`` is not used)."""
    sounds = subparsers.add_parser("sounds", help="voice prompts (pt-BR)")
    sounds.set_defaults(func=lambda _args: _usage(sounds))
    sub = sounds.add_subparsers(title="commands", metavar="COMMAND")
    build = sub.add_parser(
        "build",
        help="generate sounds/pt_BR/* from sounds/manifest.toml",
        description="Generate every prompt in all formats (wav, ulaw, alaw, gsm, sln16). "
        "Entries marked human = true are never overwritten.",
    )
    build.add_argument(
        "--engine", choices=ENGINES, default="espeak",
        help="espeak (espeak-ng, offline; default) or gtts (online, falls back to espeak)",
    )  # fmt: skip
    build.add_argument("--voice", default="pt-br", help="espeak-ng voice (default: pt-br)")
    build.add_argument("--manifest", type=Path, help="default: <repo>/sounds/manifest.toml")
    build.add_argument("--out", type=Path, help="default: <repo>/sounds/pt_BR")
    build.add_argument(
        "--only", action="append", metavar="NAME",
        help="build only this prompt (e.g. sac/menu-main); repeatable",
    )  # fmt: skip
    build.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    """Handler of ``sounds build``: 0 on success, 1 on a build/manifest error."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    default_manifest, default_out = default_paths()
    manifest = args.manifest or default_manifest
    out = args.out or (manifest.parent / OUT_REL.name if args.manifest else default_out)
    try:
        report = build_sounds(
            manifest, out, engine=args.engine, voice=getattr(args, "voice", "pt-br"),
            only=args.only,
        )  # fmt: skip
    except (ManifestError, SoundsBuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"built {len(report.built)} prompt(s) into {out} "
        f"({len(report.files)} files; {len(report.human)} human recording(s) kept; "
        f"{len(report.fallbacks)} gTTS fallback(s))"
    )
    return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2
