"""HTTP routes of the reports feature (supervisor role)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sac_ivr.auth.http import require
from sac_ivr.http.context import core_of
from sac_ivr.http.errors import not_found
from sac_ivr.http.listing import listing_response, parse_page
from sac_ivr.lifecycle.services import lifecycle_of
from sac_ivr.protocols.tables import Protocol
from sac_ivr.reports import page, schemas, services

routes = web.RouteTableDef()


async def _full_report(request: web.Request) -> dict[str, Any]:
    """Every figure for the period the query asks for (supervisor only)."""
    await require(request, "supervisor")
    svc = core_of(request)
    config = lifecycle_of(svc)
    params = schemas.parse_params(request, config.tz)
    async with svc.reader() as session:
        return await services.full_report(session, params, config)


@routes.get("/api/v1/reports/summary")
async def summary(request: web.Request) -> web.Response:
    return web.json_response(await _full_report(request))


@routes.get("/api/v1/reports/{name}")
async def table(request: web.Request) -> web.Response:
    await require(request, "supervisor")
    name = request.match_info["name"]
    if name not in schemas.REPORT_NAMES:
        raise not_found(f"no report {name!r}; reports: summary, {', '.join(schemas.REPORT_NAMES)}")
    svc = core_of(request)
    config = lifecycle_of(svc)
    params = schemas.parse_params(request, config.tz)
    page_ = parse_page(request, max_limit=schemas.MAX_LIMIT)
    async with svc.reader() as session:
        if name in schemas.LISTS:
            items, total = await services.deadline_list(
                session, params, name, config, page_.limit, page_.offset
            )
        else:
            if name == "by-subject":
                rows = await services.by_column(
                    session, params, Protocol.subject, config, "subject"
                )
            elif name == "by-department":
                rows = await services.by_column(
                    session, params, Protocol.department, config, "department"
                )
            elif name == "by-agent":
                rows = await services.by_agent(session, params)
            else:
                rows = await services.calls_per_hour(session, params, config.tz)
            total = len(rows)
            items = rows[page_.offset : page_.offset + page_.limit]
    return listing_response(page_, items, total, schemas.CSV_COLUMNS[name], f"{name}.csv")


@routes.get("/reports")
async def report_page(request: web.Request) -> web.Response:
    """The page a supervisor opens in the browser (token in the sac_token cookie)."""
    report = await _full_report(request)
    svc = core_of(request)
    config = lifecycle_of(svc)
    html = page.render(
        report, config.tz, svc.settings.company_name, config.profile.title, dict(request.query)
    )
    return web.Response(text=html, content_type="text/html")


def setup(app: web.Application) -> None:
    app.add_routes(routes)
