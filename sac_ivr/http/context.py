"""Where HTTP handlers find the running core."""

from __future__ import annotations

from aiohttp import web

from sac_ivr.core import Core

# The panels' session cookie: auth issues it, the CSRF guard checks writes made with it.
SESSION_COOKIE = "sac_session"

CORE_KEY: web.AppKey[Core] = web.AppKey("core", Core)


def core_of(request: web.Request) -> Core:
    return request.app[CORE_KEY]
