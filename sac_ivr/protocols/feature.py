"""Protocols: the number every call gets, issued in batches by
:class:`~sac_ivr.protocols.issuer.ProtocolIssuer` (``core.issuer``), the protocol's
record and timeline, the agents' API and the public lookup.

Offers the **issued** hooks, on the issuer: row fillers and in-transaction hooks
run in the issuing transaction, after-commit callbacks once it committed. Used by
lifecycle (each new protocol's due date, in its row) and notifications (the opening
SMS queued in the outbox; the outbox worker woken after the commit): see
:data:`sac_ivr.features.FEATURES` for the order.

On PostgreSQL it gives the issuer its outage reserve and journal
(:mod:`sac_ivr.protocols.reserve`): numbers through a database outage.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from sac_ivr.config import ConfigError, Settings
from sac_ivr.core import Core
from sac_ivr.db.engine import is_sqlite
from sac_ivr.feature import Feature
from sac_ivr.protocols import http, tables
from sac_ivr.protocols.numbering import make_format
from sac_ivr.protocols.reserve import Journal


def check_settings(settings: Settings) -> None:
    make_format(settings)  # raises ConfigError with the reason
    if not 10 <= settings.public_lookups_per_hour <= 100000:
        raise ConfigError("public_lookups_per_hour: must be between 10 and 100000")
    for name in ("public_verify_failures_per_number", "public_verify_failures_per_client"):
        if not 1 <= getattr(settings, name) <= 1000:
            raise ConfigError(f"{name}: must be between 1 and 1000")
    if not 0 <= settings.protocol_reserve_block <= 1_000_000:
        raise ConfigError("protocol_reserve_block: must be between 0 and 1000000")
    # Below the call route's own bound (4 s), past which the caller gets no number.
    if not 0.05 <= settings.protocol_db_timeout <= 3:
        raise ConfigError("protocol_db_timeout: must be between 0.05 and 3 seconds")
    if settings.protocol_reserve_block and not settings.protocol_journal_path.strip():
        raise ConfigError("protocol_journal_path: empty (protocol_reserve_block=0 turns it off)")


def database_identity(database_url: str) -> str:
    """What the journal remembers of its database: the URL without its password."""
    return make_url(database_url).set(password=None).render_as_string(hide_password=False)


def wire(core: Core) -> None:
    """The outage reserve, on PostgreSQL (on SQLite the database is a local file: a
    journal next to it would be lost with it, see the README). The journal file is
    opened on the first issue, so the web process never touches it."""
    settings = core.settings
    if settings.protocol_reserve_block <= 0 or is_sqlite(core.engine):
        return
    journal = Journal(settings.protocol_journal_path, database_identity(settings.database_url))
    core.issuer.use_reserve(
        journal, block=settings.protocol_reserve_block, db_timeout=settings.protocol_db_timeout
    )


FEATURE = Feature[Core](
    name="protocols",
    depends_on=("audit", "auth", "lifecycle"),
    tables=tables,
    http=http.setup,
    check_settings=check_settings,
    offers=("issued",),
    wire=wire,
)
