"""Reports: figures over protocols and calls, as JSON, CSV and an HTML page."""

from __future__ import annotations

from sac_ivr.core import Core
from sac_ivr.feature import Feature
from sac_ivr.reports import http

FEATURE = Feature[Core](
    name="reports", depends_on=("history", "lifecycle", "protocols"), http=http.setup
)
