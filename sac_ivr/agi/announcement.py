"""Reading a protocol number to the caller, shared by the ``protocol`` and
``announce`` routes."""

from __future__ import annotations

from dataclasses import dataclass

from sac_ivr.agi import prompts
from sac_ivr.asterisk.fastagi import AgiCall
from sac_ivr.protocols.numbering import spoken_groups

REPEAT_KEY = "1"
SMS_KEY = "2"


@dataclass(frozen=True)
class AnnouncementResult:
    times_played: int
    sms_requested: bool


async def read_number(
    call: AgiCall,
    number: str,
    group_size: int,
    keys: str,
) -> str | None:
    """Intro, the digits in groups with a short pause between groups, closing.

    Returns the key that interrupted the playback, if any.
    """
    key = await call.stream_file(prompts.PROTOCOL_INTRO, keys)
    if key:
        return key
    for index, group in enumerate(spoken_groups(number, group_size)):
        if index:
            key = await call.stream_file(prompts.PAUSE, keys)
            if key:
                return key
        for digit in group:
            key = await call.stream_file(prompts.digit(digit), keys)
            if key:
                return key
    return await call.stream_file(prompts.PROTOCOL_OUTRO, keys)


async def announce(
    call: AgiCall,
    number: str,
    *,
    group_size: int,
    max_repeats: int,
    digit_timeout_ms: int,
    offer_sms: bool,
) -> AnnouncementResult:
    """Read the number, then offer to repeat it (key 1) and, if enabled, to send it
    by SMS (key 2). Pressing 1 at any point starts the reading over."""
    played = 0
    while True:
        played += 1
        can_repeat = played <= max_repeats
        live_keys = (REPEAT_KEY if can_repeat else "") + (SMS_KEY if offer_sms else "")
        key = await read_number(call, number, group_size, live_keys)
        if key is None and can_repeat:
            key = await call.stream_file(prompts.PROTOCOL_REPEAT_OFFER, live_keys)
        if key is None and offer_sms:
            key = await call.stream_file(prompts.PROTOCOL_SMS_OFFER, live_keys)
        if key is None and live_keys:
            key = await call.wait_for_digit(digit_timeout_ms)
        if key == REPEAT_KEY and can_repeat:
            continue
        if key == SMS_KEY and offer_sms:
            await call.stream_file(prompts.PROTOCOL_SMS_SENT)
            return AnnouncementResult(times_played=played, sms_requested=True)
        return AnnouncementResult(times_played=played, sms_requested=False)
