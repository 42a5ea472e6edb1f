"""The OpenAPI document, built from the application it describes.

Every route of ``app.router`` is documented from its declaration
(:mod:`sac_ivr.http.endpoints`): parameters, body and answers are the JSON schemas
of the same pydantic models that check the request and shape the response. A test
compares the document with the routes the application really serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from sac_ivr import __version__
from sac_ivr.http.endpoints import Endpoint, endpoint_of
from sac_ivr.http.errors import RETRY_AFTER_S

REF_TEMPLATE = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Section:
    """A field one feature adds to another feature's answer (``model``): its shape,
    documented as a property of that model's schema."""

    model: type[BaseModel]
    field: str
    shape: Any  # a type pydantic can describe, e.g. list[Call]
    description: str


SECTIONS_KEY: web.AppKey[list[Section]] = web.AppKey("openapi_sections", list)


def document_section(app: web.Application, section: Section) -> None:
    """Called by the feature that adds the field, where it adds it (its setup)."""
    app.setdefault(SECTIONS_KEY, []).append(section)


def _add_sections(sections: list[Section], schemas: dict[str, Any]) -> None:
    for section in sections:
        shape = TypeAdapter(section.shape).json_schema(
            ref_template=REF_TEMPLATE, mode="serialization"
        )
        for name, schema in shape.pop("$defs", {}).items():
            if schemas.setdefault(name, schema) != schema:
                raise ValueError(f"two different models are named {name}: rename one")
        target = schemas[section.model.__name__]  # KeyError: no route answers that model
        target.setdefault("properties", {})[section.field] = {
            **shape,
            "description": section.description,
        }


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR_TEXT = {
    400: "Invalid input (the message says which; error.details.field names it)",
    401: "Missing or unknown token",
    403: "The token's role may not do this; or a browser write from another origin",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "The body is larger than 256 KiB",
    415: "The body is not application/json",
    503: f"The database does not answer; Retry-After: {RETRY_AFTER_S} (seconds)",
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def error_responses(*statuses: int) -> dict[str, Any]:
    return {str(s): json_body(ref("Error"), ERROR_TEXT[s]) for s in statuses}


def _common_responses(path: str, operation: dict[str, Any]) -> None:
    """The answers every route may give besides its own: 400 for input no route
    accepts (a NUL in the query, a non-ASCII Authorization header, ...); for routes
    that read the database, 503; for routes with a JSON body, 413 and 415."""
    responses = operation.setdefault("responses", {})
    wanted = [400]
    if (path.startswith("/api/v1/") and path != "/api/v1/openapi.json") or path == "/reports":
        wanted.append(503)
    if "requestBody" in operation:
        wanted += [413, 415]
    for status in wanted:
        if str(status) not in responses:
            responses[str(status)] = json_body(ref("Error"), ERROR_TEXT[status])
    if "503" in responses and "headers" not in responses["503"]:
        responses["503"]["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}
        }


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or text, never null: ``X | None`` documents as X."""
    branches = schema.get("anyOf")
    if branches:
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            return {**kept[0], **rest}
    return schema


def _parameters(model: type[BaseModel], where: str) -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in _without_null(prop).items() if k != "title"}
        if prop.get("default", "") is None:
            del prop["default"]
        param: dict[str, Any] = {"name": name, "in": where, "schema": prop}
        if where == "path" or name in required:
            param["required"] = True
        out.append(param)
    return out


def _operation(declared: Endpoint, schemas: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI operation of one declared endpoint."""
    models: list[tuple[type[BaseModel], Any]] = []
    if declared.body_model is not None:
        models.append((declared.body_model, "validation"))
    if declared.response is not None:
        models.append((declared.response, "serialization"))
    models += [(model, "serialization") for model, _ in declared.other_responses.values()]
    refs, defs = models_json_schema(models, ref_template=REF_TEMPLATE)
    for name, schema in defs.get("$defs", {}).items():
        if schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different models are named {name}: rename one")
    operation: dict[str, Any] = {"summary": declared.summary}
    if declared.description:
        operation["description"] = declared.description
    parameters: list[dict[str, Any]] = []
    if declared.path_model is not None:
        parameters += _parameters(declared.path_model, "path")
    if declared.query_model is not None:
        parameters += _parameters(declared.query_model, "query")
    if parameters:
        operation["parameters"] = parameters
    operation["security"] = [{"bearer": []}] if declared.secured else [{}]
    if declared.body_model is not None:
        body_schema = refs[(declared.body_model, "validation")]
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_schema}},
        }
    responses: dict[str, Any] = {}
    if declared.response is not None:
        schema = refs[(declared.response, "serialization")]
        responses[str(declared.status)] = json_body(schema, declared.response_description)
        content = responses[str(declared.status)]["content"]
        if declared.csv is not None:  # a listing: the same rows as CSV with format=csv
            content["text/csv"] = {"schema": {"type": "string"}}
        content.update({media: dict(spec) for media, spec in declared.alternate_content.items()})
    for status, (model, description) in declared.other_responses.items():
        responses[str(status)] = json_body(refs[(model, "serialization")], description)
    for status, answer in declared.raw_responses.items():
        responses[str(status)] = dict(answer)
    for status in declared.errors:
        text = declared.error_descriptions.get(status) or ERROR_TEXT[status]
        responses[str(status)] = json_body(ref("Error"), text)
    if declared.role is not None:
        responses.update(error_responses(401, 403))
    operation["responses"] = responses
    return operation


def _tag(handler: object) -> str:
    """The feature a handler belongs to (``sac_ivr.<feature>.http``), as its tag."""
    parts = getattr(handler, "__module__", "").split(".")
    return parts[1] if len(parts) > 2 and parts[1] != "http" else "service"


def _route_path(route: web.AbstractRoute) -> str | None:
    info = route.resource.get_info() if route.resource is not None else {}
    return info.get("path") or info.get("formatter")


def build_openapi(app: web.Application) -> dict[str, Any]:
    """The document of the routes ``app`` serves, from each route's declaration."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        path = _route_path(route)
        if path is None:
            continue
        method = route.method.lower()
        declared = endpoint_of(route.handler)
        if declared is not None:
            operation = _operation(declared, schemas)
            operation["tags"] = [_tag(route.handler)]
            paths.setdefault(path, {})[method] = operation
    _add_sections(app.get(SECTIONS_KEY, []), schemas)
    for path, operations in paths.items():
        for operation in operations.values():
            _common_responses(path, operation)
    return {
        "openapi": "3.1.0",
        "info": {"title": "sac-ivr", "version": __version__},
        "tags": [
            {"name": name}
            for name in sorted(
                {t for ops in paths.values() for op in ops.values() for t in op["tags"]}
            )
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
