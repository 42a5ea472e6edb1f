"""Panels: the agent panel and the supervisor view, their login session and the
live event stream (reads ``core.live_calls`` and ``core.live``)."""

from __future__ import annotations

from sac_ivr.core import Core
from sac_ivr.feature import Feature
from sac_ivr.panels import http

FEATURE = Feature[Core](name="panels", http=http.setup)
