"""The call path: the FastAGI routes the dialplan calls (``agi://host/<route>``).

``protocol`` issues the caller's number (``core.issuer``: the **issued** hooks run
in its transaction), reads it out and offers the SMS key; ``announce`` reads a
number again, ``subject`` records the caller's menu choice, ``health`` probes the
database. Offers **sms_requested** (the caller pressed the SMS key); key 2 is only
offered when some feature listens.
"""

from __future__ import annotations

from sac_ivr.agi.routes import announce, health, protocol, subject
from sac_ivr.config import ConfigError, Settings
from sac_ivr.core import Core
from sac_ivr.feature import Feature


def check_settings(settings: Settings) -> None:
    if settings.say_group_size < 1:
        raise ConfigError("say_group_size: must be at least 1")
    if not 0 <= settings.announce_repeats <= 5:
        raise ConfigError("announce_repeats: must be between 0 and 5")


FEATURE = Feature[Core](
    name="call path",
    depends_on=("lifecycle", "protocols"),
    agi_routes={
        "protocol": protocol.handle,
        "announce": announce.handle,
        "subject": subject.handle,
        "health": health.handle,
    },
    check_settings=check_settings,
    offers=("sms_requested",),
)
