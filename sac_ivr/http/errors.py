"""JSON errors: every failure the client can cause is a 4xx with a clear message.

Handlers raise :class:`ApiError`; the middleware turns it (and aiohttp's own HTTP
errors, keeping their headers: a 405 keeps ``Allow``) into
``{"error": {"code": ..., "message": ..., "details": ...}}``. A database that does not
answer is a 503 with ``Retry-After``. Anything else is a bug: logged with a request
id and answered 500 without internals.
"""

from __future__ import annotations

import errno
import logging
import socket
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from asyncpg import exceptions as asyncpg_exc
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

# Seconds a client is asked to wait before trying again while the database is down.
RETRY_AFTER_S = 5
# Headers of aiohttp's HTTPException that describe its plain-text body, not ours.
_BODY_HEADERS = frozenset(
    h.lower() for h in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH, hdrs.CONTENT_ENCODING)
)


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


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    **details: Any,
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return web.json_response({"error": body}, status=status, headers=headers)


# Errors of the PostgreSQL driver that mean "no database to talk to": connection
# lost or refused (class 08), shut down or restarting (57), out of connections (53).
_PG_UNAVAILABLE = (
    asyncpg_exc.PostgresConnectionError,
    asyncpg_exc.OperatorInterventionError,
    asyncpg_exc.InsufficientResourcesError,
)
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ETIMEDOUT,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.EADDRNOTAVAIL,
        errno.EPIPE,
    }
)
# SQLite's OperationalError is also its word for bad SQL ("no such column", syntax
# errors): only these mean the file cannot be used right now.
_SQLITE_UNAVAILABLE = (
    "locked",
    "busy",
    "unable to open",
    "disk i/o",
    "readonly database",
    "malformed",
    "not a database",
    "database or disk is full",
)


def database_unavailable(exc: BaseException) -> bool:
    """Is this the database not answering (down, restarting, unreachable, locked,
    out of connections), as opposed to a bug in a query (which stays a 500)?"""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (sa_exc.TimeoutError, *_PG_UNAVAILABLE)):
            return True  # TimeoutError: no pooled connection came free in time
        if isinstance(current, sqlite3.OperationalError):
            return any(word in str(current).lower() for word in _SQLITE_UNAVAILABLE)
        if type(current) is asyncpg_exc.InterfaceError and "closed" in str(current):
            return True  # "connection is closed"; its subclasses (DataError...) are bugs
        if isinstance(current, (ConnectionError, TimeoutError, socket.gaierror)):
            return True
        if isinstance(current, OSError) and current.errno in _NETWORK_ERRNOS:
            return True
        # SQLAlchemy keeps the driver's error in .orig; drivers chain with "from".
        for nxt in (getattr(current, "orig", None), current.__cause__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return False


def _http_exception_response(exc: web.HTTPException) -> web.Response:
    code = exc.reason.lower().replace(" ", "_")
    message = exc.text or exc.reason
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = f"{exc.method} is not allowed here; allowed: {allowed}"
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
    return error_response(exc.status, code, message, headers=headers)


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
        return _http_exception_response(exc)
    except Exception as exc:
        request_id = uuid.uuid4().hex[:12]
        if database_unavailable(exc):
            log.warning(
                "request %s %s: database unavailable (%s; id %s)",
                request.method,
                request.path,
                type(exc).__name__,
                request_id,
            )
            return error_response(
                503,
                "database_unavailable",
                f"the database does not answer; try again in a few seconds (id {request_id})",
                headers={hdrs.RETRY_AFTER: str(RETRY_AFTER_S)},
            )
        log.exception("request %s %s failed (id %s)", request.method, request.path, request_id)
        return error_response(
            500, "internal_error", f"internal error; quote id {request_id} to the operator"
        )
