"""In-process publish/subscribe of live call-center events (for the panels).

The AMI side publishes; the panels' SSE/WebSocket endpoints subscribe. Each
subscriber has a bounded queue: a browser that stops reading loses old events (and
is told so with a ``{"type": "overflow"}`` event so it can reload its snapshot)
instead of making the process grow.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

QUEUE_SIZE = 500


class LiveHub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    while not queue.empty():
                        queue.get_nowait()
                queue.put_nowait({"type": "overflow"})
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


class LiveCalls(Protocol):
    """Where the panels read the live call state from: the calls feature's runtime
    when AMI is on (``snapshot()`` as documented in :mod:`sac_ivr.calls.tracker`)."""

    def snapshot(self) -> Any: ...
