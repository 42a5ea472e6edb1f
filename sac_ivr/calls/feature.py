"""Calls: the call log and the live call state, both from the Asterisk Manager
Interface (AMI), followed by the web process when ``ami_enabled``.

Its background work (:class:`~sac_ivr.calls.runtime.CallsRuntime`) becomes
``core.live_calls``, which the panels read.
"""

from __future__ import annotations

from sac_ivr.calls import http, tables
from sac_ivr.calls.runtime import start_calls
from sac_ivr.core import Core
from sac_ivr.feature import Feature

FEATURE = Feature[Core](
    name="calls",
    tables=tables,
    http=http.setup,
    background=start_calls,
)
