"""The ``sac-ivr`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sac_ivr import __version__
from sac_ivr.cli_args import add_setting_flags, setting_overrides, setup_logging
from sac_ivr.config import ConfigError, Settings
from sac_ivr.core import Core
from sac_ivr.feature import Commands
from sac_ivr.features import add_commands, build_core, load_settings


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings a command was given (file, environment, flags), checked by every
    feature."""
    return load_settings(config_file=args.config, overrides=setting_overrides(args))


COMMANDS = Commands[Core](load_settings=settings_of, build_core=build_core)


def cmd_serve(args: argparse.Namespace) -> int:
    from sac_ivr.supervisor import serve

    settings = settings_of(args)
    setup_logging(settings.log_level, role="supervisor")
    try:
        return serve(settings, migrate=not args.no_migrate)
    except OSError as exc:
        print(f"sac-ivr: cannot listen: {exc}", file=sys.stderr)
        return 1


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from sac_ivr.db.migrate import upgrade

    settings = settings_of(args)
    setup_logging(settings.log_level)
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
    add_setting_flags(serve)
    serve.add_argument(
        "--no-migrate", action="store_true", help="don't upgrade the database schema at start"
    )
    serve.set_defaults(func=cmd_serve)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    db_upgrade = db.add_parser("upgrade", help="apply alembic migrations")
    add_setting_flags(db_upgrade)
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(func=cmd_db_upgrade)

    add_commands(commands, COMMANDS)  # each feature's (tokens, outbox, retention, sounds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"sac-ivr: configuration error: {exc}", file=sys.stderr)
        return 2
