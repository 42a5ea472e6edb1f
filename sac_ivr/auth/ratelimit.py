"""Token buckets keyed by a string (a client address, a protocol number).

Each key may spend ``capacity`` at once and regains ``capacity`` every ``period``
seconds, continuously. The buckets live in the memory of the HTTP process: one per
instance (with sac-ivr's process model, the one process that serves HTTP), so no
request from an anonymous client ever writes to the database. Memory is bounded:
buckets that have refilled are forgotten first, then the least recently used.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

from sac_ivr.http.errors import error_response

DEFAULT_MAX_KEYS = 100_000


class RateLimiter:
    def __init__(
        self,
        capacity: float,
        period: float,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity <= 0 or period <= 0:
            raise ValueError("capacity and period must be positive")
        self.capacity = float(capacity)
        self.rate = self.capacity / period  # units regained per second
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key: (level, at)

    def _level(self, key: str, now: float) -> float:
        entry = self._buckets.get(key)
        if entry is None:
            return self.capacity
        level, at = entry
        return min(self.capacity, level + (now - at) * self.rate)

    def wait(self, key: str, cost: float = 1.0) -> float:
        """Seconds until ``key`` may spend ``cost`` (0: now), without spending."""
        level = self._level(key, self._clock())
        return 0.0 if level >= cost else (cost - level) / self.rate

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend ``cost`` if the bucket holds it and return 0; else spend nothing and
        return the seconds to wait (a Retry-After)."""
        now = self._clock()
        level = self._level(key, now)
        if level < cost:
            return (cost - level) / self.rate
        self._buckets[key] = (level - cost, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self.max_keys:
            self._prune(now)
        return 0.0

    def reset(self, key: str) -> None:
        self._buckets.pop(key, None)

    def _prune(self, now: float) -> None:
        """Down to 90% of ``max_keys`` (so the scan runs once per tenth of the keys)."""
        target = int(self.max_keys * 0.9)
        for key, (level, at) in list(self._buckets.items()):
            if level + (now - at) * self.rate >= self.capacity:
                del self._buckets[key]  # refilled: forgetting it changes nothing
        while len(self._buckets) > target:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


def too_many_requests(code: str, message: str, wait_s: float) -> web.Response:
    """A JSON 429 with Retry-After (returned by the handler, so the header stays)."""
    response = error_response(429, code, message, retry_after_s=int(retry_after(wait_s)))
    response.headers["Retry-After"] = retry_after(wait_s)
    return response
