"""What every ``sac-ivr`` command with settings shares: the setting flags and the
log set-up. The top-level :mod:`sac_ivr.cli` and the features' ``cli.py`` use it."""

from __future__ import annotations

import argparse
from typing import Any

from sac_ivr.config import setting_help


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="TOML settings file (also SAC_IVR_CONFIG)."
    )
    group = parser.add_argument_group(
        "settings", "each also from the environment as SAC_IVR_<NAME> or the TOML file"
    )
    for name, help_text, default in setting_help():
        flag = "--" + name.replace("_", "-")
        shown = "***" if "secret" in name else default
        group.add_argument(flag, dest=name, metavar="VALUE", help=f"{help_text} [{shown!r}]")


def setting_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags (None: not given)."""
    return {name: getattr(args, name, None) for name, _, _ in setting_help()}


def setup_logging(level: str, role: str | None = None) -> None:
    from sac_ivr.logs import setup_logging as setup  # local: commands start fast

    setup(level, role=role)
