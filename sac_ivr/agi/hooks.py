"""The hook the call path offers (declared in :mod:`sac_ivr.agi.feature`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

# ``sms_requested(number, uniqueid)``: the caller pressed the "send me this protocol
# by SMS" key after hearing the number. Offered (key 2 is announced) only when some
# feature listens; the lifecycle feature does when an SMS provider is configured.
SmsRequestHandler = Callable[[str, str | None], Awaitable[None]]
