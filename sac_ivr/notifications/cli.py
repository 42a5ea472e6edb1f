"""``sac-ivr outbox run``: a process that only sends notifications (the same worker
``sac-ivr serve`` runs), for deployments that separate it; ``sac-ivr outbox list``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any


def add_parser(subparsers: Any) -> None:
    from sac_ivr.cli import _add_setting_flags

    outbox = subparsers.add_parser("outbox", help="notification outbox (SMS, e-mail)")
    commands = outbox.add_subparsers(dest="outbox_command", required=True)
    run = commands.add_parser("run", help="send queued notifications until SIGTERM")
    _add_setting_flags(run)
    run.set_defaults(func=cmd_run)
    listing = commands.add_parser("list", help="show the latest notifications")
    _add_setting_flags(listing)
    listing.add_argument("--status", choices=["pending", "sending", "sent", "failed"])
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=cmd_list)


def cmd_run(args: argparse.Namespace) -> int:
    from sac_ivr.cli import _settings, _setup_logging
    from sac_ivr.core import Core
    from sac_ivr.db.migrate import upgrade_async
    from sac_ivr.notifications.worker import OutboxWorker

    settings = _settings(args)
    _setup_logging(settings.log_level)

    async def go() -> None:
        await upgrade_async(settings.database_url)
        core = Core.create(settings)
        worker = OutboxWorker(core)
        core.extras["outbox"] = worker
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await worker.start()
        print(f"READY outbox worker {worker.worker_id}", flush=True)
        try:
            await stop.wait()
        finally:
            await core.close()

    asyncio.run(go())
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from sac_ivr.cli import _settings
    from sac_ivr.db.engine import create_engine, make_sessionmaker
    from sac_ivr.db.migrate import upgrade
    from sac_ivr.notifications.services import mask_recipient
    from sac_ivr.notifications.tables import OutboxMessage

    settings = _settings(args)
    upgrade(settings.database_url)

    async def go() -> list[OutboxMessage]:
        engine = create_engine(settings.database_url)
        try:
            query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(args.limit)
            if args.status:
                query = query.where(OutboxMessage.status == args.status)
            async with make_sessionmaker(engine)() as session:
                return list(await session.scalars(query))
        finally:
            await engine.dispose()

    for m in asyncio.run(go()):
        protocol = (m.data or {}).get("protocol") or "-"
        print(
            f"{m.id}\t{m.status}\t{m.channel}\t{m.kind}\t{protocol}\t"
            f"{mask_recipient(m.channel, m.recipient)}\tattempts={m.attempts}\t"
            f"{m.last_error or ''}"
        )
    return 0
