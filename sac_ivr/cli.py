"""The ``sac-ivr`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from sac_ivr import __version__
from sac_ivr.config import ConfigError, Settings, setting_help


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
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


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {name: getattr(args, name, None) for name, _, _ in setting_help()}
    return Settings.load(config_file=args.config, overrides=overrides)


def _setup_logging(level: str, role: str | None = None) -> None:
    from sac_ivr.logs import setup_logging

    setup_logging(level, role=role)


def cmd_serve(args: argparse.Namespace) -> int:
    from sac_ivr.supervisor import serve

    settings = _settings(args)
    _setup_logging(settings.log_level, role="supervisor")
    try:
        return serve(settings, migrate=not args.no_migrate)
    except OSError as exc:
        print(f"sac-ivr: cannot listen: {exc}", file=sys.stderr)
        return 1


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from sac_ivr.db.migrate import upgrade

    settings = _settings(args)
    _setup_logging(settings.log_level)
    upgrade(settings.database_url, args.revision)
    print(f"database at {args.revision}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sac-ivr", description="Brazilian SAC protocol numbers and call center on Asterisk."
    )
    parser.add_argument("--version", action="version", version=f"sac-ivr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the service: a call process (FastAGI) and a web process (HTTP, AMI)"
    )
    _add_setting_flags(serve)
    serve.add_argument(
        "--no-migrate", action="store_true", help="don't upgrade the database schema at start"
    )
    serve.set_defaults(func=cmd_serve)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    db_upgrade = db.add_parser("upgrade", help="apply alembic migrations")
    _add_setting_flags(db_upgrade)
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(func=cmd_db_upgrade)

    for extra in _extra_commands():
        extra(commands)
    return parser


def _extra_commands() -> list[Any]:
    """Commands that live in their feature package (tokens, sounds, retention, ...)."""
    from sac_ivr.auth import cli as auth_cli
    from sac_ivr.notifications import cli as notifications_cli
    from sac_ivr.retention import cli as retention_cli
    from sac_ivr.sounds import cli as sounds_cli

    return [
        auth_cli.add_parser,
        notifications_cli.add_parser,
        retention_cli.add_parser,
        sounds_cli.add_parser,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"sac-ivr: configuration error: {exc}", file=sys.stderr)
        return 2
