"""The public lookup's rate limits: one set per process, kept in
:class:`~sac_ivr.core.Core`."""

from __future__ import annotations

from dataclasses import dataclass

from sac_ivr.auth.ratelimit import RateLimiter
from sac_ivr.config import Settings

HOUR = 3600.0
DAY = 86400.0


@dataclass
class PublicLimits:
    lookups: RateLimiter  # per client
    failures_by_client: RateLimiter
    failures_by_number: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> PublicLimits:
        per_hour = settings.public_lookups_per_hour
        # A bucket of a tenth of the hourly figure, refilled at the hourly rate: a
        # client checks at most per_hour * 1.1 numbers in its first hour.
        return cls(
            lookups=RateLimiter(max(1, per_hour // 10), HOUR / 10),
            failures_by_client=RateLimiter(settings.public_verify_failures_per_client, DAY),
            failures_by_number=RateLimiter(settings.public_verify_failures_per_number, DAY),
        )
