"""Where HTTP handlers find the running services."""

from __future__ import annotations

from aiohttp import web

from sac_ivr.services import Services

SERVICES_KEY: web.AppKey[Services] = web.AppKey("services", Services)


def services_of(request: web.Request) -> Services:
    return request.app[SERVICES_KEY]
