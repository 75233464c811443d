"""The OpenAPI document, generated from the route table and the pydantic models.

Nothing here is written by hand per endpoint: each handler method carries an
:class:`~kernelpad.web.base.Operation` (see :func:`~kernelpad.web.base.operation`), the path comes
from the route table and every schema from its pydantic model.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import pydantic
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from kernelpad.web.base import Operation

REF = "#/components/schemas/{model}"
_METHODS = ("get", "post", "put", "patch", "delete")


def _operations(routes: list[tuple[str, type]]) -> list[tuple[str, str, Operation]]:
    found = []
    for path, handler in routes:
        for method in _METHODS:
            op = getattr(getattr(handler, method, None), "__openapi__", None)
            if isinstance(op, Operation):
                found.append((path, method, op))
    return found


def build_openapi(
    routes: list[tuple[str, type]], title: str, version: str, base_url: str = "/"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the handlers in ``routes`` (path template, handler class),
    served under ``base_url``."""
    operations = _operations(routes)
    models: dict[type[pydantic.BaseModel], JsonSchemaMode] = {}
    for _, _, op in operations:
        if op.body is not None:
            models[op.body] = "validation"
        for model in op.responses.values():
            if model is not None:
                models.setdefault(model, "serialization")
    refs, top = models_json_schema(list(models.items()), ref_template=REF)

    paths: dict[str, dict[str, Any]] = {}
    for path, method, op in operations:
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", path)
        ]
        if op.query is not None:
            schema = op.query.model_json_schema()
            for name, prop in schema.get("properties", {}).items():
                params.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in schema.get("required", []),
                        "schema": prop,
                    }
                )
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
            "tags": list(op.tags),
            "responses": {
                str(status): {
                    "description": _description(status),
                    **(
                        {"content": {"application/json": {"schema": refs[(model, models[model])]}}}
                        if model is not None
                        else {}
                    ),
                }
                for status, model in sorted(op.responses.items())
            },
        }
        if params:
            entry["parameters"] = params
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        if op.host_auth:
            entry["security"] = [{"hostToken": []}]
        paths.setdefault(path, {})[method] = entry

    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Live coding interviews on real Jupyter kernels.",
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                "hostToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The host_token returned when the session was created.",
                }
            },
        },
    }


def _description(status: int) -> str:
    return HTTPStatus(status).phrase
