"""What every service's OpenAPI document says about the platform: its bearer security and the
errors the platform itself may answer, all with one error schema.

Routes keep whatever they document themselves (the loader documents Neptune's error shape);
only the statuses a route leaves undocumented are added, as `Error` (`{"detail": "..."}`). A
422 may also carry FastAPI's list of validation errors, so it is either shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import (
    validation_error_definition,
    validation_error_response_definition,
)
from pydantic import BaseModel

# The name FastAPI gives an HTTPBearer dependency's scheme, so routes that declare it already
# and the ones added here share one scheme.
BEARER = "HTTPBearer"
UNAUTHENTICATED = {"/healthz", "/readyz", "/metrics"}

PLATFORM_ERRORS = {
    "400": "Malformed request: a NUL character, text that is not Unicode, JSON nested too deep",
    "401": "Missing or invalid bearer token",
    "403": "The caller may not do this",
    "404": "Not found, or not visible to the caller",
    "409": "Conflicts with the current state (exists already, in use, running)",
    "413": "The request body is over the configured limit",
    "422": "The request does not match what the route accepts",
}


class Error(BaseModel):
    """Every error a service answers: the platform's (`detail`: a text, or FastAPI's list of
    validation errors for a 422) or a service's own (`error`, its kind, and `message`)."""

    detail: str | list[dict[str, Any]] | None = None
    error: str | None = None
    message: str | None = None


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()  # FastAPI's document, cached on the app: completed in place
        complete(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = Error.model_json_schema()
    schemas.setdefault("ValidationError", validation_error_definition)
    schemas.setdefault("HTTPValidationError", validation_error_response_definition)
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT with `sub` (user id) and `email`; `loadbay token` mints one in"
        " dev mode.",
    }
    for path, item in schema.get("paths", {}).items():
        if path in UNAUTHENTICATED:
            continue
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                _complete_operation(operation)


def _complete_operation(operation: dict[str, Any]) -> None:
    operation.setdefault("security", [{BEARER: []}])
    responses = operation.setdefault("responses", {})
    for status, description in PLATFORM_ERRORS.items():
        documented = responses.get(status)
        if documented is None:
            responses[status] = {"description": description, "content": _json(_error(status))}
        elif status == "422" and _is_fastapi_default(documented):
            documented["content"] = _json(_error(status))


def _error(status: str) -> dict[str, Any]:
    error = {"$ref": "#/components/schemas/Error"}
    if status != "422":
        return error
    return {"anyOf": [{"$ref": "#/components/schemas/HTTPValidationError"}, error]}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _is_fastapi_default(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema == {"$ref": "#/components/schemas/HTTPValidationError"}
