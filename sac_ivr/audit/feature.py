"""Audit: the access log of every read of customers' data, and the public lookup
counters, both written in batches in the background (``core.access_log``,
``core.lookup_counters``)."""

from __future__ import annotations

from sac_ivr.audit import http, tables
from sac_ivr.core import Core
from sac_ivr.feature import Feature

FEATURE = Feature[Core](
    name="audit", depends_on=("auth", "protocols"), tables=tables, http=http.setup
)
