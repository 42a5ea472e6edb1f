"""The hooks the notifications feature offers (declared in
:mod:`sac_ivr.notifications.feature`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from sac_ivr.notifications.tables import OutboxMessage

# ``notice_delivered(session, row, delivered)``: run in the transaction that records
# an outbox row's final result (sent, or failed for good), for every kind of notice;
# e.g. the history feature marks its request delivered.
DeliveryHook = Callable[[AsyncSession, OutboxMessage, bool], Awaitable[None]]

# ``outbox_wakeup()``: work was queued in the outbox (call after the commit). The
# worker of this process listens; in the call process, the channel to the web
# process's worker does (:mod:`sac_ivr.bridge`).
OutboxWakeup = Callable[[], None]
