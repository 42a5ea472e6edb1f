"""Route ``announce``: read an existing protocol number again (information menu).

``AGI(agi://host/announce,${SAC_PROTOCOL},${CHANNEL(linkedid)})``. A number that is
malformed, was never issued, or was issued to another call (another linkedid) is
not read; the route sets ``SAC_RESULT=ERROR`` and returns.
"""

from __future__ import annotations

import logging

from sac_ivr.agi import channel_vars
from sac_ivr.agi.announcement import announce
from sac_ivr.agi.peer import belongs_to_call, loggable
from sac_ivr.asterisk.fastagi import AgiCall
from sac_ivr.core import Core
from sac_ivr.protocols.numbering import InvalidProtocolNumber

log = logging.getLogger(__name__)


async def handle(call: AgiCall, core: Core) -> None:
    args = [*call.args, "", ""]
    number, linkedid = args[0].strip(), args[1].strip()
    try:
        core.protocol_format.validate(number)
    except InvalidProtocolNumber as exc:
        log.warning(
            "uniqueid=%s: announce refused %s: %s", loggable(call.uniqueid), loggable(number), exc
        )
        await call.set_variable(channel_vars.RESULT, "ERROR")
        return
    if not await belongs_to_call(core, number, linkedid):
        log.warning(
            "uniqueid=%s: announce refused: protocol %s was not issued to this call",
            loggable(call.uniqueid),
            number,
        )
        await call.set_variable(channel_vars.RESULT, "ERROR")
        return
    await call.set_variable(channel_vars.RESULT, "OK")
    settings = core.settings
    await announce(
        call,
        number,
        group_size=settings.say_group_size,
        max_repeats=settings.announce_repeats,
        digit_timeout_ms=settings.announce_digit_timeout_ms,
        offer_sms=False,
    )
