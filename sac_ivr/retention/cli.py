"""``sac-ivr retention [--dry-run]``: purge old recordings, anonymise old records."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any


def add_parser(subparsers: Any) -> None:
    from sac_ivr.cli import _add_setting_flags

    parser = subparsers.add_parser(
        "retention",
        help="delete recordings past retention_recording_days; anonymise records "
        "answered more than retention_record_days ago (never open requests)",
    )
    _add_setting_flags(parser)
    parser.add_argument("--dry-run", action="store_true", help="list what would be done")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sac_ivr.cli import _settings, _setup_logging
    from sac_ivr.core import Core
    from sac_ivr.db.migrate import upgrade
    from sac_ivr.retention import services as retention

    settings = _settings(args)
    _setup_logging(settings.log_level)
    upgrade(settings.database_url)

    async def go() -> tuple[retention.Plan, dict[str, Any] | None]:
        svc = Core.create(settings)
        try:
            todo = await retention.plan(svc)
            done = None if args.dry_run else await retention.apply(svc, todo)
            return todo, done
        finally:
            await svc.close()

    todo, done = asyncio.run(go())
    if args.json:
        print(
            json.dumps(
                {
                    "dry_run": args.dry_run,
                    "plan": todo.summary(),
                    "recordings": [vars(r) for r in todo.recordings],
                    "protocols": [
                        {"number": n, "resolved_at": r.isoformat()} for _, n, r in todo.protocols
                    ],
                    "history_requests": todo.history_requests,
                    "result": done,
                },
                indent=2,
            )
        )
        return 1 if done and done["errors"] else 0
    verb = "would" if args.dry_run else "will"
    for r in todo.recordings:
        what = f"{verb} delete" if r.delete else "keep"
        print(f"recording {r.path} ({r.age_days} days old): {what} ({r.reason})")
    for _, number, resolved_at in todo.protocols:
        print(f"protocol {number} (answered {resolved_at:%Y-%m-%d}): {verb} anonymise")
    for request_id in todo.history_requests:
        print(f"history request {request_id}: {verb} anonymise")
    summary = todo.summary()
    print(
        f"{'dry run: ' if args.dry_run else ''}{summary['recordings_to_delete']} recording(s) "
        f"to delete, {summary['recordings_kept_open_request']} kept for open requests, "
        f"{summary['protocols_to_anonymise']} record(s), "
        f"{summary['history_requests_to_anonymise']} history request(s) and "
        f"{summary['calls_without_protocol_to_anonymise']} call(s) without a protocol "
        "to anonymise"
    )
    if done is not None:
        print(
            f"done: {done['recordings_deleted']} recording(s) deleted, "
            f"{done['protocols_anonymised']} record(s), "
            f"{done['history_requests_anonymised']} history request(s) and "
            f"{done['calls_without_protocol_anonymised']} call(s) without a protocol anonymised"
        )
        for error in done["errors"]:
            print(f"error: {error}")
        return 1 if done["errors"] else 0
    return 0
