"""Route ``subject``: record the menu option the caller chose.

``AGI(agi://host/subject,${SAC_PROTOCOL},complaint-billing,${CHANNEL(linkedid)})``.
Only known subject codes are stored, and only on the protocol issued to this very
call (its linkedid): a cancellation is legally effective, and any FastAGI peer
could otherwise register one on a number it found. The menu goes on whatever
happens here.
"""

from __future__ import annotations

import logging

from sac_ivr.agi import channel_vars
from sac_ivr.agi.peer import belongs_to_call, loggable
from sac_ivr.asterisk.fastagi import AgiCall
from sac_ivr.core import Core
from sac_ivr.lifecycle import services as lifecycle
from sac_ivr.protocols.numbering import InvalidProtocolNumber
from sac_ivr.protocols.services import ProtocolNotFound

log = logging.getLogger(__name__)


async def handle(call: AgiCall, core: Core) -> None:
    args = [*call.args, "", "", ""]
    number, subject, linkedid = args[0].strip(), args[1].strip(), args[2].strip()
    try:
        core.protocol_format.validate(number)
        if not await belongs_to_call(core, number, linkedid):
            log.warning(
                "uniqueid=%s: subject %s refused: protocol %s was not issued to this call",
                loggable(call.uniqueid),
                loggable(subject),
                number,
            )
            await call.set_variable(channel_vars.RESULT, "ERROR")
            return
        await lifecycle.record_menu_choice(core, number, subject, call.uniqueid)
    except (InvalidProtocolNumber, ProtocolNotFound, ValueError) as exc:
        log.warning(
            "uniqueid=%s: subject %s not recorded: %s",
            loggable(call.uniqueid),
            loggable(subject),
            exc,
        )
        await call.set_variable(channel_vars.RESULT, "ERROR")
        return
    await call.set_variable(channel_vars.RESULT, "OK")
