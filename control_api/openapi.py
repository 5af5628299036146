"""The OpenAPI 3.1 document of the control API, built from the route table.

Each `Operation` names its handler, its request and query models and its response
models by status. `control_api.app` mounts exactly these operations, and
`build_openapi` describes exactly these, with JSON Schemas that pydantic derives
from the same models the handlers use.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from control_api.schemas import ErrorResponse

REF_TEMPLATE = "#/components/schemas/{model}"
PATH_PARAMETER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: a value of this operation's success response feeds another operation."""

    name: str
    operation_id: str
    parameters: Mapping[str, str]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    endpoint: Callable[[Request], Awaitable[Response]]
    operation_id: str
    summary: str
    responses: Mapping[int, tuple[str, type[BaseModel] | None]]
    description: str = ""
    request_model: type[BaseModel] | None = None
    body_required: bool = True
    query_model: type[BaseModel] | None = None
    public: bool = False
    media_type: str = "application/json"
    tags: tuple[str, ...] = field(default=())
    links: tuple[Link, ...] = field(default=())


def _standard_errors(operation: Operation) -> dict[int, str]:
    errors: dict[int, str] = {}
    if not operation.public:
        errors[401] = "Missing or wrong control token."
    if PATH_PARAMETER.search(operation.path):
        errors[404] = "No episode with this id."
    if operation.request_model is not None:
        errors[400] = "The body is not JSON, or Content-Length is malformed."
        errors[413] = "The body is larger than 64 KiB."
    if operation.request_model is not None or operation.query_model is not None:
        errors[422] = "The body or query failed validation; `errors` lists each problem."
    return errors


def build_openapi(operations: Sequence[Operation], version: str) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [(ErrorResponse, "serialization")]
    for operation in operations:
        if operation.request_model is not None:
            models.append((operation.request_model, "validation"))
        if operation.query_model is not None:
            models.append((operation.query_model, "validation"))
        for _description, model in operation.responses.values():
            if model is not None:
                models.append((model, "serialization"))
    unique = list(dict.fromkeys(models))
    refs, definitions = models_json_schema(unique, ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = definitions.get("$defs", {})

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return refs[(model, mode)]  # type: ignore[index]

    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        responses: dict[str, Any] = {}
        for status, (description, model) in sorted(operation.responses.items()):
            if model is not None:
                content = {"application/json": {"schema": ref(model, "serialization")}}
            elif status >= 400:
                content = {"application/json": {"schema": ref(ErrorResponse, "serialization")}}
            elif operation.media_type == "application/json":
                content = {"application/json": {"schema": {"type": "object"}}}
            else:
                content = {operation.media_type: {"schema": {"type": "string"}}}
            responses[str(status)] = {"description": description, "content": content}
            if 200 <= status < 300 and operation.links:
                responses[str(status)]["links"] = {
                    link.name: {"operationId": link.operation_id, "parameters": dict(link.parameters)}
                    for link in operation.links
                }
        for status, description in _standard_errors(operation).items():
            responses.setdefault(str(status), {
                "description": description,
                "content": {"application/json": {"schema": ref(ErrorResponse, "serialization")}},
            })
        spec: dict[str, Any] = {
            "operationId": operation.operation_id,
            "summary": operation.summary,
            "responses": dict(sorted(responses.items())),
        }
        if operation.description:
            spec["description"] = operation.description
        if operation.tags:
            spec["tags"] = list(operation.tags)
        if operation.public:
            spec["security"] = []
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
            for name in PATH_PARAMETER.findall(operation.path)
        ]
        if operation.query_model is not None:
            query_ref = ref(operation.query_model, "validation")["$ref"].rsplit("/", 1)[-1]
            query_schema = schemas[query_ref]
            for name, schema in query_schema.get("properties", {}).items():
                parameters.append({
                    "name": name, "in": "query", "required": name in query_schema.get("required", []),
                    "description": operation.query_model.model_fields[name].description or "",
                    "schema": {k: v for k, v in schema.items() if k not in ("title", "description")},
                })
        if parameters:
            spec["parameters"] = parameters
        if operation.request_model is not None:
            spec["requestBody"] = {
                "required": operation.body_required,
                "content": {"application/json": {"schema": ref(operation.request_model, "validation")}},
            }
        paths.setdefault(operation.path, {})[operation.method.lower()] = spec

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "safebrowse control API",
            "version": version,
            "description": "The private trainer door: create (reset) episodes, read their state, "
                           "trajectories and server-side rewards, end and close them. See docs/control-api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }

