"""What a FastAGI peer sends is not trusted.

FastAGI has no authentication: anything that reaches the port can send any header
and any argument. So a route may only touch the protocol issued to the same call:
the dialplan passes ``${CHANNEL(linkedid)}`` to every route that reads or changes a
protocol, and it must equal the linkedid stored when that protocol was issued (the
public lookup shows numbers, never linkedids). And a header value goes into a log
line only shortened and without control characters.
"""

from __future__ import annotations

from sqlalchemy import select

from sac_ivr.core import Core
from sac_ivr.protocols.issuer import storable_value
from sac_ivr.protocols.tables import Protocol

# Longest header value put in a log line (uniqueids are ~20 characters).
LOG_VALUE_MAX = 40


async def belongs_to_call(core: Core, number: str, linkedid: str | None) -> bool:
    """True when protocol ``number`` exists and was issued to the call ``linkedid``.

    A protocol stored without a linkedid belongs to no call: nothing can prove it."""
    wanted = storable_value("linkedid", linkedid.strip() if linkedid else None)
    if not wanted:
        return False
    async with core.reader() as session:
        stored = await session.scalar(select(Protocol.linkedid).where(Protocol.number == number))
    return stored is not None and stored == wanted


def loggable(value: str | None) -> str:
    """A peer-supplied value fit for a log line (quoted, short, no control chars)."""
    if value is None:
        return "-"
    text = value if len(value) <= LOG_VALUE_MAX else value[:LOG_VALUE_MAX] + "…"
    return repr(text)
