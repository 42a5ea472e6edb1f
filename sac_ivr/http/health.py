"""The service-level routes: health, and the OpenAPI document itself."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from pydantic import Field
from sqlalchemy import text

from sac_ivr import __version__
from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import Endpoints, ResponseModel
from sac_ivr.http.errors import RETRY_AFTER_S
from sac_ivr.http.openapi import build_openapi

STARTED_KEY: web.AppKey[float] = web.AppKey("started", float)
HEALTH_DB_TIMEOUT_S = 2.0

api = Endpoints()


class Health(ResponseModel):
    status: str = Field(description="ok, or degraded when the database does not answer")
    version: str
    uptime_s: float
    database: str = Field(description="ok, or unavailable: <error class>")


@api.get(
    "/healthz",
    summary="Process and database health",
    response=Health,
    response_description="Healthy",
    other_responses={503: (Health, "The database does not answer")},
)
async def healthz(request: web.Request) -> Health | web.Response:
    core = core_of(request)
    health = Health(
        status="ok",
        version=__version__,
        uptime_s=round(time.monotonic() - request.app[STARTED_KEY], 1),
        database="ok",
    )
    try:
        async with asyncio.timeout(HEALTH_DB_TIMEOUT_S):
            async with core.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception as exc:
        health.status = "degraded"
        health.database = f"unavailable: {type(exc).__name__}"
        return web.json_response(
            health.model_dump(mode="json"),
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return health


@api.get(
    "/api/v1/openapi.json",
    summary="This document",
    raw_responses={
        200: {
            "description": "OpenAPI 3.1",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_openapi(request.app))


def setup(app: web.Application) -> None:
    app[STARTED_KEY] = time.monotonic()
    app.add_routes(api.routes)
