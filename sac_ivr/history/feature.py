"""History: a customer's history of demands (Decreto 11.034), requested, built and
sent, and the requests tracked to their legal deadline.

Uses **notice_delivered**: a history the outbox e-mailed marks its request delivered.
"""

from __future__ import annotations

from sac_ivr.core import Core
from sac_ivr.feature import Feature
from sac_ivr.history import http, services, tables


def wire(core: Core) -> None:
    core.notice_delivered.add(services.history_sent)


FEATURE = Feature[Core](
    name="history",
    depends_on=("audit", "auth", "lifecycle", "notifications", "protocols"),
    tables=tables,
    http=http.setup,
    uses=("notice_delivered",),
    wire=wire,
)
