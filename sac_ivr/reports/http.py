"""HTTP routes of the reports feature (supervisor role)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sac_ivr.http.context import core_of
from sac_ivr.http.endpoints import Endpoints
from sac_ivr.http.listing import Page, listing_response
from sac_ivr.lifecycle.services import lifecycle_of
from sac_ivr.protocols.tables import Protocol
from sac_ivr.reports import page, schemas, services

api = Endpoints()
HTML_PAGE = {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}
CSV_CONTENT = {"text/csv": {"schema": {"type": "string"}}}


async def _full_report(request: web.Request, query: schemas.ReportQuery) -> dict[str, Any]:
    """Every figure for the period the query asks for."""
    svc = core_of(request)
    return await services.full_report_concurrently(svc.reader, query.params(), lifecycle_of(svc))


@api.get(
    "/api/v1/reports/summary",
    summary="Every report figure at once (what the report page shows)",
    description=schemas.DEFINITIONS,
    role="supervisor",
    query_model=schemas.ReportQuery,
    response=schemas.Report,
    response_description="The report",
)
async def summary(request: web.Request, query: schemas.ReportQuery) -> schemas.Report:
    return schemas.Report.model_validate(await _full_report(request, query))


@api.get(
    "/api/v1/reports/{name}",
    summary="One report table, as JSON or CSV",
    description="pending, overdue, due-soon: requests not yet answered, soonest "
    "due first. by-subject, by-department, by-agent, calls-per-hour: see summary. "
    + schemas.DEFINITIONS,
    role="supervisor",
    path_model=schemas.ReportPath,
    query_model=schemas.ReportTableQuery,
    response=schemas.ReportTablePage,
    response_description="{items, total, limit, offset}, or CSV with format=csv",
    alternate_content=CSV_CONTENT,
    errors=(404,),
)
async def table(
    request: web.Request, path: schemas.ReportPath, query: schemas.ReportTableQuery
) -> web.Response | schemas.ReportTablePage:
    name = path.name
    svc = core_of(request)
    config = lifecycle_of(svc)
    params = query.params()
    async with svc.reader() as session:
        if name in schemas.LISTS:
            items, total = await services.deadline_list(
                session, params, name, config, query.limit, query.offset
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
            items = rows[query.offset : query.offset + query.limit]
    if query.format == "csv":
        page_ = Page(limit=query.limit, offset=query.offset, format="csv")
        return listing_response(page_, items, total, schemas.CSV_COLUMNS[name], f"{name}.csv")
    return schemas.ReportTablePage(
        items=[schemas.ReportRow.model_validate(item) for item in items],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )


@api.get(
    "/reports",
    summary="The report page for supervisors (HTML with SVG charts, pt-BR)",
    description="Token in the Authorization header or the sac_token cookie.",
    role="supervisor",
    query_model=schemas.ReportQuery,
    raw_responses={200: HTML_PAGE},
)
async def report_page(request: web.Request, query: schemas.ReportQuery) -> web.Response:
    """The page a supervisor opens in the browser (token in the sac_token cookie)."""
    report = await _full_report(request, query)
    svc = core_of(request)
    config = lifecycle_of(svc)
    html = page.render(
        report, config.tz, svc.settings.company_name, config.profile.title, dict(request.query)
    )
    return web.Response(text=html, content_type="text/html")


def setup(app: web.Application) -> None:
    app.add_routes(api.routes)
