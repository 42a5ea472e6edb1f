"""The real ``sac-ivr serve``'s CLI and HTTP API, as the end-to-end modules use them
(stdlib only: the tests' own event loop never serves anything here)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from tests.asterisk.service import SacIvrService

T = TypeVar("T")


def create_token(
    service: SacIvrService, name: str, role: str = "agent", extension: str | None = None
) -> str:
    """A token from ``sac-ivr token create`` on the service's database."""
    return service.create_token(name, role, extension)


def api(
    service: SacIvrService,
    path: str,
    token: str | None = None,
    *,
    method: str = "GET",
    body: Any = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """(status, decoded JSON body) of one request to the service's API."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(service.base_url + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def wait_until(condition: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def service_errors(service: SacIvrService) -> list[str]:
    """Lines of the service's log at ERROR level or with a traceback."""
    return [
        line
        for line in service.log_text().splitlines()
        if " ERROR " in line or "Traceback" in line or "CRITICAL" in line
    ]
