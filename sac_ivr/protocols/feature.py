"""Protocols: the number every call gets, issued in batches by
:class:`~sac_ivr.protocols.issuer.ProtocolIssuer` (``core.issuer``), the protocol's
record and timeline, the agents' API and the public lookup.

Offers the **issued** hooks, on the issuer: row fillers and in-transaction hooks
run in the issuing transaction, after-commit callbacks once it committed. Used by
lifecycle (each new protocol's due date, in its row) and notifications (the opening
SMS queued in the outbox; the outbox worker woken after the commit): see
:data:`sac_ivr.features.FEATURES` for the order.
"""

from __future__ import annotations

from sac_ivr.config import ConfigError, Settings
from sac_ivr.core import Core
from sac_ivr.feature import Feature
from sac_ivr.protocols import http, tables
from sac_ivr.protocols.numbering import make_format


def check_settings(settings: Settings) -> None:
    make_format(settings)  # raises ConfigError with the reason
    if not 10 <= settings.public_lookups_per_hour <= 100000:
        raise ConfigError("public_lookups_per_hour: must be between 10 and 100000")
    for name in ("public_verify_failures_per_number", "public_verify_failures_per_client"):
        if not 1 <= getattr(settings, name) <= 1000:
            raise ConfigError(f"{name}: must be between 1 and 1000")


FEATURE = Feature[Core](
    name="protocols",
    depends_on=("audit", "auth", "lifecycle"),
    tables=tables,
    http=http.setup,
    check_settings=check_settings,
    offers=("issued",),
)
