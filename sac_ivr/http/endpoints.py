"""One declaration per endpoint: its route, its OpenAPI operation and its checks.

A feature declares each handler once, on its :class:`Endpoints` table::

    api = Endpoints()

    @api.get("/api/v1/notifications", summary="...", role="supervisor",
             query_model=NotificationQuery, response=NotificationPage,
             csv=NOTIFICATIONS_CSV)
    async def list_notifications(request, query: NotificationQuery) -> NotificationPage:
        ...

From that declaration, for each request, in this order (the order the handlers
always checked in): the role (401/403, through the authorizer the auth feature
installs under :data:`AUTHORIZE_KEY`), the path parameters, the query, the JSON
body (415, strict JSON, unknown fields refused); each a pydantic model whose fields
use the hardened readers of :mod:`sac_ivr.http.fields`. The handler receives the
typed objects it names (``path``, ``query``, ``body``, ``identity``) and returns its
response model, serialised here (or a listing page, written as CSV with
``format=csv``, or any aiohttp response for what is not JSON). The same
declaration generates the OpenAPI operation (:mod:`sac_ivr.http.openapi` walks the
application's router).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from sac_ivr.http.errors import bad_request
from sac_ivr.http.fields import WIRE_NAMES, QueryChoice, QueryInt
from sac_ivr.http.inputs import read_json, read_object, reject_unknown
from sac_ivr.http.listing import (
    DEFAULT_LIMIT,
    FORMATS,
    MAX_LIMIT,
    MAX_OFFSET,
    Page,
    listing_response,
)

# Checks the caller's role and answers who it is, or raises 401/403.
Authorize = Callable[[web.Request, str], Awaitable[Any]]
AUTHORIZE_KEY: web.AppKey[Authorize] = web.AppKey("authorize", Callable)  # type: ignore[arg-type]
# A role, or how to pick it from the request (a CSV export needs more than a page).
Role = str | Callable[[web.Request], str]

ItemT = TypeVar("ItemT", bound=BaseModel)


class RequestModel(BaseModel):
    """Base of path, query and body models: wire names without a trailing ``_``;
    the fields are checked in the order they are declared."""

    model_config = ConfigDict(alias_generator=WIRE_NAMES, frozen=True)


def _document_required(schema: dict[str, Any], model: type[BaseModel]) -> None:
    required = list(getattr(model, "REQUIRED", ()))
    if required:
        schema["required"] = required
        for name in required:
            schema.get("properties", {}).get(name, {}).pop("default", None)


class BodyModel(RequestModel):
    """Base of JSON body models: unknown fields refused (before any field is read:
    :func:`read_body`). A field the reader must see even when absent (to answer
    "X is required" in its turn) has ``Field(default=None, validate_default=True)``
    and is listed in ``REQUIRED``, which the schema then states."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_required)
    REQUIRED: ClassVar[tuple[str, ...]] = ()


class ResponseModel(BaseModel):
    """Base of response models."""

    model_config = ConfigDict(alias_generator=WIRE_NAMES, populate_by_name=True)


class ListQuery(RequestModel):
    """``limit``, ``offset`` and ``format`` of every listing; filters come after."""

    limit: Annotated[int, QueryInt(1, MAX_LIMIT)] = DEFAULT_LIMIT
    offset: Annotated[int, QueryInt(0, MAX_OFFSET)] = 0
    format: Annotated[Literal["json", "csv"], QueryChoice(FORMATS)] = "json"


class PageOf(ResponseModel, Generic[ItemT]):
    """A listing's page: ``{items, total, limit, offset}``. Each listing subclasses
    ``PageOf[Item]`` as ``ItemPage``, the name its schema has in the document."""

    items: list[ItemT]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class CsvExport:
    """The columns (and file name) of a listing written with ``format=csv``."""

    columns: Sequence[str]
    filename: str = "export.csv"


@dataclass(frozen=True)
class Endpoint:
    """Everything about one route, declared once."""

    method: str
    path: str
    summary: str
    role: Role | None = None
    # Checked by the handler itself (e.g. a public route that shows more to a token).
    auth: bool = False
    description: str | None = None
    path_model: type[RequestModel] | None = None
    query_model: type[RequestModel] | None = None
    body_model: type[RequestModel] | None = None
    # "object": a JSON object whose unknown fields are refused; "json": any JSON
    # document, handed to the body model as it is (the model says what it accepts).
    body_reader: Literal["object", "json"] = "object"
    response: type[BaseModel] | None = None
    status: int = 200
    response_description: str = "OK"
    csv: CsvExport | None = None
    # Other media types of the declared answer (e.g. text/html with format=html).
    alternate_content: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Headers of the declared answer (e.g. Cache-Control: no-store for a secret).
    headers: Mapping[str, str] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    # What an error status means here, when not the usual (e.g. 409, 429).
    error_descriptions: Mapping[int, str] = field(default_factory=dict)
    # Other JSON answers the handler gives itself: status -> (model, description).
    other_responses: Mapping[int, tuple[type[BaseModel], str]] = field(default_factory=dict)
    # OpenAPI responses written by hand, for what is not JSON (HTML, SSE, files).
    raw_responses: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def secured(self) -> bool:
        return self.role is not None or self.auth


_ENDPOINT_ATTR = "sac_ivr_endpoint"


def endpoint_of(handler: Any) -> Endpoint | None:
    """The declaration of a route's handler (None for a route declared elsewhere)."""
    found = getattr(handler, _ENDPOINT_ATTR, None)
    return found if isinstance(found, Endpoint) else None


def _validation_error(exc: ValidationError) -> Exception:
    """pydantic's own findings (the hardened readers raise their 400 themselves),
    in the words the API always used."""
    first = exc.errors()[0]
    name = ".".join(str(part) for part in first["loc"]) or "body"
    if first["type"] == "missing":
        return bad_request(f"{name} is required", field=name)
    if first["type"] in ("string_type", "str_type"):
        return bad_request(f"{name} must be a string", field=name)
    return bad_request(f"{name} is invalid: {first['msg']}", field=name)


ModelT = TypeVar("ModelT", bound=RequestModel)


def _validate(model: type[ModelT], data: Any, context: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise _validation_error(exc) from None


def read_query(model: type[ModelT], request: web.Request, **context: Any) -> ModelT:
    """The request's query as ``model`` (the first value of a repeated parameter).
    ``context`` adds to the validation context (tests give what a running service
    would, e.g. ``tz``)."""
    raw = {key: request.query.get(key) for key in request.query}
    return _validate(model, raw, {"request": request, **context})


def read_path(model: type[ModelT], request: web.Request) -> ModelT:
    return _validate(model, dict(request.match_info), {"request": request})


def read_body(model: type[ModelT], body: dict[str, Any], context: dict[str, Any]) -> ModelT:
    """A JSON object as ``model``: unknown fields refused, each field checked."""
    reject_unknown(body, body_fields(model))
    return _validate(model, body, context)


def body_fields(model: type[BaseModel]) -> list[str]:
    """The names a body may hold, in declaration order."""
    return [info.alias or name for name, info in model.model_fields.items()]


Handler = Callable[..., Awaitable[Any]]


def _wrap(declared: Endpoint, handler: Handler) -> Callable[[web.Request], Awaitable[Any]]:
    wanted = set(inspect.signature(handler).parameters)

    async def run(request: web.Request) -> web.StreamResponse:
        kwargs: dict[str, Any] = {}
        if declared.role is not None:
            role = declared.role(request) if callable(declared.role) else declared.role
            identity = await request.app[AUTHORIZE_KEY](request, role)
            if "identity" in wanted:
                kwargs["identity"] = identity
        if declared.path_model is not None:
            kwargs["path"] = read_path(declared.path_model, request)
        query = None
        if declared.query_model is not None:
            query = kwargs["query"] = read_query(declared.query_model, request)
        if declared.body_model is not None:
            context = {"request": request}
            if declared.body_reader == "json":
                raw_body = await read_json(request)
                kwargs["body"] = _validate(declared.body_model, raw_body, context)
            else:
                body = await read_object(request)
                kwargs["body"] = read_body(declared.body_model, body, context)
        result = await handler(request, **{k: v for k, v in kwargs.items() if k in wanted})
        return _respond(declared, result, query)

    run.__name__ = handler.__name__
    run.__qualname__ = handler.__qualname__
    run.__module__ = handler.__module__
    run.__doc__ = handler.__doc__
    setattr(run, _ENDPOINT_ATTR, declared)
    return run


def _json(model: BaseModel) -> Any:
    """A response model as JSON values: the fields the handler set (a section a
    view leaves out stays out, as it always did)."""
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _respond(declared: Endpoint, result: Any, query: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, PageOf) and declared.csv is not None:
        fmt = getattr(query, "format", "json")
        if fmt == "csv":
            page = Page(limit=result.limit, offset=result.offset, format="csv")
            rows = [_json(item) for item in result.items]
            return listing_response(
                page, rows, result.total, declared.csv.columns, declared.csv.filename
            )
    if isinstance(result, BaseModel):
        return web.json_response(
            _json(result), status=declared.status, headers=dict(declared.headers) or None
        )
    raise TypeError(f"{declared.method} {declared.path} returned {type(result).__name__}")


class Endpoints:
    """A feature's routes, each declared once (see the module's docstring)."""

    def __init__(self) -> None:
        self.routes = web.RouteTableDef()

    def route(self, method: str, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        declared = Endpoint(method=method.upper(), path=path, **declaration)

        def register(handler: Handler) -> Handler:
            self.routes.route(declared.method, path)(_wrap(declared, handler))
            return handler

        return register

    def get(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **declaration)

    def post(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **declaration)

    def patch(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **declaration)

    def delete(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **declaration)
