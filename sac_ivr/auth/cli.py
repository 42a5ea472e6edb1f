"""``sac-ivr token create|list|revoke``: API tokens from the command line (the same
operations an admin has over HTTP, for the first admin token and for scripts)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sac_ivr.auth.services import ROLES
from sac_ivr.cli_args import add_setting_flags
from sac_ivr.core import Core
from sac_ivr.feature import Commands

T = TypeVar("T")
DURATION = re.compile(r"([0-9]{1,5})([dh])")


def add_parser(subparsers: Any, commands: Commands[Core]) -> None:
    token = subparsers.add_parser("token", help="API tokens").add_subparsers(
        dest="token_command", required=True
    )
    create = token.add_parser("create", help="create a token and print it once")
    add_setting_flags(create)
    create.add_argument("name", help="who holds it (an agent's login, a system)")
    create.add_argument("--role", choices=list(ROLES), default="agent")
    create.add_argument("--extension", help="agent's interface, e.g. PJSIP/1001")
    create.add_argument(
        "--expires-in", metavar="DURATION", help="e.g. 90d or 12h; default: never expires"
    )
    create.set_defaults(func=functools.partial(cmd_create, commands))

    listing = token.add_parser("list", help="list the active tokens (never the tokens themselves)")
    add_setting_flags(listing)
    listing.add_argument("--all", action="store_true", help="revoked and expired ones too")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=functools.partial(cmd_list, commands))

    revoke = token.add_parser("revoke", help="revoke a token and end its panel sessions")
    add_setting_flags(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("name", nargs="?", help="the name of the active token to revoke")
    which.add_argument("--id", type=int, help="the id of the token (see token list)")
    revoke.set_defaults(func=functools.partial(cmd_revoke, commands))


def parse_duration(text: str) -> timedelta:
    match = DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 90d or 12h")
    amount, unit = int(match[1]), match[2]
    if amount < 1:
        raise ValueError("the duration must be at least 1")
    return timedelta(days=amount) if unit == "d" else timedelta(hours=amount)


def _run(
    commands: Commands[Core], args: argparse.Namespace, work: Callable[[Any], Awaitable[T]]
) -> T:
    """Migrate the database, then run ``work(sessionmaker)`` on it."""
    from sac_ivr.db.engine import create_engine, make_sessionmaker
    from sac_ivr.db.migrate import upgrade

    settings = commands.load_settings(args)
    upgrade(settings.database_url)

    async def go() -> T:
        engine = create_engine(settings.database_url)
        try:
            return await work(make_sessionmaker(engine))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def cmd_create(commands: Commands[Core], args: argparse.Namespace) -> int:
    from sac_ivr.auth.services import TokenError, create_token
    from sac_ivr.db.base import utcnow

    expires_at: datetime | None = None
    if args.expires_in:
        try:
            expires_at = utcnow() + parse_duration(args.expires_in)
        except ValueError as exc:
            print(f"sac-ivr: --expires-in: {exc}", file=sys.stderr)
            return 2
    try:
        token = _run(
            commands,
            args,
            lambda sm: create_token(
                sm, args.name, args.role, extension=args.extension, expires_at=expires_at
            ),
        )
    except TokenError as exc:
        print(f"sac-ivr: {exc}", file=sys.stderr)
        return 2
    print(token)
    until = f", expires {expires_at.isoformat(timespec='minutes')}" if expires_at else ""
    print(
        f"(token for {args.name}, role {args.role}{until}: shown once, store it now)",
        file=sys.stderr,
    )
    return 0


def cmd_list(commands: Commands[Core], args: argparse.Namespace) -> int:
    from sac_ivr.auth.schemas import token_view
    from sac_ivr.auth.services import list_tokens, live_session_counts

    async def work(sessionmaker: Any) -> list[dict[str, Any]]:
        async with sessionmaker() as session:
            rows, _ = await list_tokens(session, include_inactive=args.all, limit=100000)
            counts = await live_session_counts(session, [r.id for r in rows])
        return [token_view(r, counts.get(r.id, 0)) for r in rows]

    views = _run(commands, args, work)
    if args.json:
        for view in views:
            print(json.dumps(view, ensure_ascii=False))
        return 0
    print(f"{'id':>5}  {'name':<24} {'role':<10} {'extension':<16} {'expires':<17} state")
    for v in views:
        state = "active" if v["active"] else ("revoked" if v["revoked_at"] else "expired")
        if v["active"] and v["live_sessions"]:
            state += f" ({v['live_sessions']} session(s))"
        expires = (v["expires_at"] or "never")[:16]
        print(
            f"{v['id']:>5}  {v['name']:<24} {v['role']:<10} {v['extension'] or '-':<16} "
            f"{expires:<17} {state}"
        )
    return 0


def cmd_revoke(commands: Commands[Core], args: argparse.Namespace) -> int:
    from sac_ivr.auth.services import TokenNotFound, revoke_token

    try:
        row = _run(commands, args, lambda sm: revoke_token(sm, token_id=args.id, name=args.name))
    except TokenNotFound as exc:
        print(f"sac-ivr: {exc}", file=sys.stderr)
        return 1
    print(f"token {row.id} ({row.name}) revoked; its panel sessions ended")
    return 0
