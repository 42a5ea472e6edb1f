"""Route ``protocol``: issue the call's number, store it, read it to the caller.

The number is committed before the first digit is played (Decreto 6.523 art. 15,
11.034 art. 12). If no number can be issued, the route sets ``SAC_RESULT=ERROR``
and returns: the dialplan tells the caller an attendant will give the number and
goes on to the menu. The caller is never left without service.
"""

from __future__ import annotations

import asyncio
import logging

from sac_ivr.agi import channel_vars
from sac_ivr.agi.announcement import announce
from sac_ivr.asterisk.fastagi import AgiCall
from sac_ivr.phones import is_mobile
from sac_ivr.protocols.issuer import CallInfo, ProtocolIssueError
from sac_ivr.services import Services

log = logging.getLogger(__name__)

# A caller should not sit in silence waiting for a database: past this, go on
# without a number (the row may still be committed; it is then simply not spoken).
ISSUE_TIMEOUT_S = 4.0


def call_info(call: AgiCall, linkedid: str | None) -> CallInfo:
    return CallInfo(
        caller_number=call.header("agi_callerid"),
        caller_name=call.header("agi_calleridname"),
        called_number=call.header("agi_dnid") or _dialled(call.header("agi_extension")),
        uniqueid=call.header("agi_uniqueid"),
        channel=call.header("agi_channel"),
        linkedid=linkedid,
    )


def _dialled(extension: str | None) -> str | None:
    """The extension is the dialled number only when it is one (not "s")."""
    if extension and extension.lstrip("+").isdigit():
        return extension
    return None


async def handle(call: AgiCall, services: Services) -> None:
    settings = services.settings
    # The dialplan passes ${CHANNEL(linkedid)} as the first argument: it ties the
    # protocol to the call log (all legs of the call) without a round trip here.
    linkedid = (call.args or [""])[0].strip() or None
    try:
        async with asyncio.timeout(ISSUE_TIMEOUT_S):
            issued = await services.issuer.issue(call_info(call, linkedid))
    except (ProtocolIssueError, TimeoutError) as exc:
        log.error(
            "uniqueid=%s: no protocol number issued (%s); caller goes on to the menu",
            call.uniqueid,
            exc or "timed out",
        )
        await call.set_variable(channel_vars.RESULT, "ERROR")
        return
    log.info("uniqueid=%s: protocol %s issued", call.uniqueid, issued.number)
    result = await announce(
        call,
        issued.number,
        group_size=settings.say_group_size,
        max_repeats=settings.announce_repeats,
        digit_timeout_ms=settings.announce_digit_timeout_ms,
        # Only a mobile can receive the SMS: a landline caller is not offered key 2.
        offer_sms=services.sms_requested is not None and is_mobile(issued.caller_e164),
        # Set right after the intro, so the caller hears audio as soon as the number
        # is committed; the dialplan reads it only after the route returns.
        variables={channel_vars.PROTOCOL: issued.number},
    )
    if result.sms_requested and services.sms_requested is not None:
        await call.set_variable(channel_vars.SMS_REQUESTED, "1")
        await services.sms_requested(issued.number, call.uniqueid)
    # OK only once the number was read to the end: if this process dies mid-reading
    # (AGI still ends in SUCCESS), the dialplan sees SAC_PROTOCOL without it and reads
    # the number itself instead of leaving the caller with half of it.
    await call.set_variable(channel_vars.RESULT, "OK")
