"""Route ``announce``: read an existing protocol number again (information menu).

``AGI(agi://host/announce,${SAC_PROTOCOL})``. A number that is malformed or was
never issued is not read; the route sets ``SAC_RESULT=ERROR`` and returns.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from sac_ivr.agi import channel_vars
from sac_ivr.agi.announcement import announce
from sac_ivr.asterisk.fastagi import AgiCall
from sac_ivr.protocols.models import Protocol
from sac_ivr.protocols.numbering import InvalidProtocolNumber
from sac_ivr.services import Services

log = logging.getLogger(__name__)


async def handle(call: AgiCall, services: Services) -> None:
    number = (call.args or [""])[0].strip()
    try:
        services.protocol_format.validate(number)
    except InvalidProtocolNumber as exc:
        log.warning("uniqueid=%s: announce refused %r: %s", call.uniqueid, number, exc)
        await call.set_variable(channel_vars.RESULT, "ERROR")
        return
    async with services.reader() as session:
        found = await session.scalar(select(Protocol.id).where(Protocol.number == number))
    if found is None:
        log.warning("uniqueid=%s: announce of unknown protocol %s", call.uniqueid, number)
        await call.set_variable(channel_vars.RESULT, "ERROR")
        return
    await call.set_variable(channel_vars.RESULT, "OK")
    settings = services.settings
    await announce(
        call,
        number,
        group_size=settings.say_group_size,
        max_repeats=settings.announce_repeats,
        digit_timeout_ms=settings.announce_digit_timeout_ms,
        offer_sms=False,
    )
