"""Lifecycle: statuses, subjects, departments and legal deadlines; agents change a
protocol's fields and status, each change on the timeline with its notice.

Uses **issued** (every new protocol gets its reply deadline in its own row) and,
when an SMS provider is configured, **sms_requested** (the caller's "send me this
protocol by SMS" key queues the SMS).
"""

from __future__ import annotations

import functools

from sac_ivr.core import Core
from sac_ivr.feature import Feature
from sac_ivr.lifecycle import http, services
from sac_ivr.lifecycle.config import check_settings
from sac_ivr.notifications.services import sms_enabled


def wire(core: Core) -> None:
    core.issuer.add_row_filler(services.due_date_filler(core))
    if sms_enabled(core.settings):
        core.sms_requested.add(functools.partial(services.request_protocol_sms, core))


FEATURE = Feature[Core](
    name="lifecycle",
    depends_on=("auth", "notifications", "protocols"),
    http=http.setup,
    check_settings=check_settings,
    uses=("issued", "sms_requested"),
    wire=wire,
)
