"""Route ``subject``: record the menu option the caller chose.

``AGI(agi://host/subject,${SAC_PROTOCOL},complaint-billing)``. Only known subject
codes are stored; the menu goes on whatever happens here.
"""

from __future__ import annotations

import logging

from sac_ivr.agi import channel_vars
from sac_ivr.asterisk.fastagi import AgiCall
from sac_ivr.lifecycle import services as lifecycle
from sac_ivr.protocols.numbering import InvalidProtocolNumber
from sac_ivr.protocols.services import ProtocolNotFound
from sac_ivr.services import Services

log = logging.getLogger(__name__)


async def handle(call: AgiCall, services: Services) -> None:
    args = [*call.args, "", ""]
    number, subject = args[0].strip(), args[1].strip()
    try:
        services.protocol_format.validate(number)
        await lifecycle.record_menu_choice(services, number, subject, call.uniqueid)
    except (InvalidProtocolNumber, ProtocolNotFound, ValueError) as exc:
        log.warning("uniqueid=%s: subject %r not recorded: %s", call.uniqueid, subject, exc)
        await call.set_variable(channel_vars.RESULT, "ERROR")
        return
    await call.set_variable(channel_vars.RESULT, "OK")
