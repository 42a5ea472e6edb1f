"""HTTP helpers for the privacy and access tests: requests from a chosen loopback
address (127.0.0.x is a separate client), with a token or a session cookie."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from sac_ivr.runner import RunningService, start_service
from tests.conftest import make_settings
from tests.fakeasterisk.agi import fake_call


@dataclass
class Answer:
    status: int
    body: Any
    text: str
    headers: dict[str, str]


class Client:
    """One HTTP client of the service: its own source address and cookie jar. It plays
    a browser on the service's own pages (``Sec-Fetch-Site: same-origin``), so its
    cookie-authenticated writes pass the same-origin check (sac_ivr/http/csrf.py)."""

    def __init__(self, port: int, source: str = "127.0.0.1", token: str | None = None) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = token
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(source, 0), force_close=True),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            headers={"Sec-Fetch-Site": "same-origin"},
        )

    async def close(self) -> None:
        await self.session.close()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **params: str,
    ) -> Answer:
        sent = dict(headers or {})
        token = token if token is not None else self.token
        if token:
            sent["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"headers": sent, "params": params}
        if body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.base + path, **kwargs) as response:
            text = await response.text()
            parsed = None
            if response.content_type == "application/json" and text:
                parsed = json.loads(text)
            return Answer(response.status, parsed, text, dict(response.headers))

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.call("GET", path, **kwargs)


@contextlib.asynccontextmanager
async def service(db_url: str, **overrides: Any) -> AsyncIterator[RunningService]:
    running = await start_service(make_settings(db_url, **overrides), migrate=False)
    try:
        yield running
    finally:
        await running.stop(drain_seconds=1.0)


@contextlib.asynccontextmanager
async def clients(running: RunningService, *sources: str) -> AsyncIterator[list[Client]]:
    made = [Client(running.http_port, source) for source in sources]
    try:
        yield made
    finally:
        for client in made:
            await client.close()


async def new_call(running: RunningService, **headers: str) -> str:
    result = await fake_call("127.0.0.1", running.agi_port, **headers)
    return result.variables["SAC_PROTOCOL"]
