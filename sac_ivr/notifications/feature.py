"""Notifications: SMS and e-mail to customers through an outbox written in the same
transaction as the change it announces, and the worker that sends it (web process,
or ``sac-ivr outbox run``).

Uses **issued**: the opening SMS is queued in the issuing transaction, and the
worker woken after the commit when a batch queued one. Offers **notice_delivered**
(run in the transaction that records a notice's final result) and
**outbox_wakeup** (work was queued; the worker, or the channel to the web process,
listens).
"""

from __future__ import annotations

from sac_ivr.core import Core
from sac_ivr.feature import Feature
from sac_ivr.notifications import cli, http, services, tables
from sac_ivr.notifications.config import check_settings
from sac_ivr.notifications.worker import start_outbox_worker


def wire(core: Core) -> None:
    core.issuer.add_hook(services.opening_hook(core))
    core.issuer.add_after_commit(services.wake_after_opening(core))


FEATURE = Feature[Core](
    name="notifications",
    depends_on=("lifecycle", "protocols"),
    tables=tables,
    http=http.setup,
    background=start_outbox_worker,
    cli=cli.add_parser,
    check_settings=check_settings,
    offers=("notice_delivered", "outbox_wakeup"),
    uses=("issued",),
    wire=wire,
)
