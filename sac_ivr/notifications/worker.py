"""The outbox worker: claims due notices, sends them, records the results.

Delivery semantics across crashes (kill -9 anywhere):

- killed after the change committed, before any send: the rows are ``pending``;
  the next worker (this process restarted, or another one) sends them. Nothing is
  lost: the change and its notices were one commit.
- killed while a send is in flight: the row stays ``sending`` until its lease ends,
  then is sent again **with the same key**. A provider that honours idempotency keys
  (the generic webhook's ``Idempotency-Key``) answers the repeat without sending:
  exactly one message. An SMTP server that had not yet acknowledged the DATA
  discards the half-sent message: exactly one.
- the remaining window: the provider/SMTP server accepted the message and the
  process died before committing ``sent`` (one short local transaction). Without an
  idempotency key (SMTP, Zenvia) the customer may get the message twice; both copies
  carry the same Message-ID (e-mail), so clients show one. The worker commits the
  result right after the provider's answer, before anything else, to keep the window
  that short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from sac_ivr.core import Core
from sac_ivr.notifications import services as outbox
from sac_ivr.notifications.delivery import Sender, SendError
from sac_ivr.notifications.email import SmtpSender
from sac_ivr.notifications.sms import HttpSmsSender
from sac_ivr.notifications.tables import OutboxMessage

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0


def make_senders(core: Core) -> dict[str, Sender]:
    settings = core.settings
    senders: dict[str, Sender] = {}
    if outbox.email_enabled(settings):
        senders["email"] = SmtpSender(settings)
    if outbox.sms_enabled(settings):
        senders["sms"] = HttpSmsSender(settings)
    return senders


class OutboxWorker:
    def __init__(self, core: Core, senders: dict[str, Sender] | None = None) -> None:
        self.core = core
        self.settings = core.settings
        self.senders = make_senders(core) if senders is None else senders
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._limit = asyncio.Semaphore(self.settings.outbox_concurrency)

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def close(self) -> None:
        """Stop: the batch in flight gets a few seconds to finish (its rows would
        otherwise wait for their lease to expire), then is cancelled."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_S)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for sender in self.senders.values():
            await sender.close()

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "outbox scan failed; trying again in %s s", self.settings.outbox_poll_interval
                )
                handled = 0
            if self._stopping:
                break
            if handled < self.settings.outbox_batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.outbox_poll_interval)

    async def run_once(self) -> int:
        """Claim one batch and send it; returns how many rows were claimed."""
        rows = await outbox.claim(
            self.core.sessionmaker, self.worker_id, self.settings, reader=self.core.reader
        )
        if rows:
            await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _deliver(self, row: OutboxMessage) -> None:
        async with self._limit:
            sender = self.senders.get(row.channel)
            error: str | None = None
            permanent = False
            provider_id: str | None = None
            if sender is None:
                error = f"{row.channel} is not configured in this process"
            else:
                try:
                    result = await sender.send(row)
                    provider_id = result.provider_id
                except SendError as exc:
                    error, permanent = str(exc), exc.permanent
                except Exception as exc:  # a bug in a sender must not stop the worker
                    log.exception("outbox %d: %s sender failed", row.id, row.channel)
                    error = f"{type(exc).__name__}: {exc}"
            status = await outbox.record_result(
                self.core.sessionmaker,
                row.id,
                self.worker_id,
                self.settings,
                provider_id=provider_id,
                error=error,
                permanent=permanent,
            )
            if error:
                log.warning(
                    "outbox %d: %s to %s attempt %d failed (%s): %s (details in the outbox)",
                    row.id,
                    row.channel,
                    outbox.mask_recipient(row.channel, row.recipient),
                    row.attempts,
                    status,
                    outbox.error_kind(error),
                )


async def start_outbox_worker(core: Core, app: object) -> None:
    """runner STARTER: the worker runs in ``sac-ivr serve`` unless outbox_worker=false
    or no channel (SMTP, SMS provider) is configured: then nothing is ever queued."""
    settings = core.settings
    if not settings.outbox_worker:
        return
    if not (outbox.email_enabled(settings) or outbox.sms_enabled(settings)):
        return
    worker = OutboxWorker(core)
    core.extras["outbox"] = worker
    await worker.start()
