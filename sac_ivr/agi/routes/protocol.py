"""Route ``protocol``: issue the call's number, store it, read it to the caller.

``AGI(agi://host/protocol,${CHANNEL(linkedid)})``; on the dialplan's retry
``AGI(agi://host/protocol,${CHANNEL(linkedid)},retry)``.

The number is committed before the first digit is played (Decreto 6.523 art. 15,
11.034 art. 12), and SAC_PROTOCOL is set on the channel right after the commit,
before the first prompt: from then on the dialplan can read the number itself
whatever happens to this process. If no number can be issued, the route sets
``SAC_RESULT=ERROR`` and returns: the dialplan tells the caller an attendant will
give the number and goes on to the menu. The caller is never left without service.

The retry: if this process dies after the commit and before Asterisk got
SAC_PROTOCOL, the AGI ends without SAC_PROTOCOL and without SAC_RESULT, and the
dialplan calls this route again at once with ``retry``. Then the route first looks
for the protocol already issued to this very call (same linkedid, uniqueid and
channel) and reads that number instead of issuing a second one.
"""

from __future__ import annotations

import asyncio
import logging

from sac_ivr.agi import channel_vars
from sac_ivr.agi.announcement import announce
from sac_ivr.agi.peer import loggable
from sac_ivr.asterisk.fastagi import AgiCall
from sac_ivr.core import Core
from sac_ivr.phones import is_mobile
from sac_ivr.protocols.issuer import CallInfo, IssuedProtocol, ProtocolIssueError

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


async def _number_for(core: Core, info: CallInfo, retry: bool) -> tuple[IssuedProtocol, bool]:
    """The call's number and whether it was found already issued (a retry)."""
    if retry:
        found = await core.issuer.find_issued(info)
        if found is not None:
            return found, True
    return await core.issuer.issue(info), False


async def handle(call: AgiCall, core: Core) -> None:
    settings = core.settings
    args = [*call.args, "", ""]
    # The dialplan passes ${CHANNEL(linkedid)} as the first argument: it ties the
    # protocol to the call log (all legs of the call) without a round trip here, and
    # it is what the other routes check a protocol against (only its own call may
    # change it).
    linkedid = args[0].strip() or None
    retry = args[1].strip() == channel_vars.RETRY
    try:
        async with asyncio.timeout(ISSUE_TIMEOUT_S):
            issued, found = await _number_for(core, call_info(call, linkedid), retry)
    except (ProtocolIssueError, TimeoutError) as exc:
        log.error(
            "uniqueid=%s: no protocol number issued (%s); caller goes on to the menu",
            loggable(call.uniqueid),
            exc or "timed out",
        )
        await call.set_variable(channel_vars.RESULT, "ERROR")
        return
    # First thing after the commit: the number is on the channel before any prompt,
    # so a crash from here on still leaves the dialplan able to read it (and the
    # agent's phone to show it).
    await call.set_variable(channel_vars.PROTOCOL, issued.number)
    log.info(
        "uniqueid=%s: protocol %s %s",
        loggable(call.uniqueid),
        issued.number,
        "found again on the dialplan's retry" if found else "issued",
    )
    result = await announce(
        call,
        issued.number,
        group_size=settings.say_group_size,
        max_repeats=settings.announce_repeats,
        digit_timeout_ms=settings.announce_digit_timeout_ms,
        # Only a mobile can receive the SMS: a landline caller is not offered key 2.
        offer_sms=core.sms_requested is not None and is_mobile(issued.caller_e164),
    )
    if result.sms_requested and core.sms_requested is not None:
        await call.set_variable(channel_vars.SMS_REQUESTED, "1")
        await core.sms_requested(issued.number, call.uniqueid)
    # OK only once the number was read to the end: if this process dies mid-reading
    # (AGI still ends in SUCCESS), the dialplan sees SAC_PROTOCOL without it and reads
    # the number itself instead of leaving the caller with half of it.
    await call.set_variable(channel_vars.RESULT, "OK")
