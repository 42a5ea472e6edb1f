"""JSON errors: every failure the client can cause is a 4xx with a clear message.

Handlers raise :class:`ApiError`; the middleware turns it (and aiohttp's own HTTP
errors) into ``{"error": {"code": ..., "message": ...}}``. Anything else is a bug:
logged with a request id and answered 500 without internals.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def bad_request(message: str, code: str = "invalid_request", **details: Any) -> ApiError:
    return ApiError(400, code, message, **details)


def not_found(message: str, code: str = "not_found") -> ApiError:
    return ApiError(404, code, message)


def error_response(status: int, code: str, message: str, **details: Any) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return web.json_response({"error": body}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, **exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return error_response(exc.status, code, exc.text or exc.reason)
    except Exception:
        request_id = uuid.uuid4().hex[:12]
        log.exception("request %s %s failed (id %s)", request.method, request.path, request_id)
        return error_response(
            500, "internal_error", f"internal error; quote id {request_id} to the operator"
        )
