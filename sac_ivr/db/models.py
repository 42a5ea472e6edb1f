"""Imports every feature's tables so that ``Base.metadata`` is complete.

Alembic's env.py and the test fixtures import this module; a new feature adds its
``models`` import here.
"""

from sac_ivr.audit import tables as audit_models
from sac_ivr.auth import tables as auth_models
from sac_ivr.calls import tables as call_models
from sac_ivr.db.base import Base
from sac_ivr.history import tables as history_models
from sac_ivr.notifications import tables as notification_models
from sac_ivr.protocols import tables as protocol_models

__all__ = [
    "Base",
    "audit_models",
    "auth_models",
    "call_models",
    "history_models",
    "notification_models",
    "protocol_models",
]
