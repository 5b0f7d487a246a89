"""What every bulk-loader route shares: the API's settings and the caller as dependencies,
Neptune's error body, and reading parameters and bodies the way Neptune does."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, cast
from urllib.parse import parse_qsl

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from loadbay_loader.graph.access import LoaderAccess, Unauthenticated
from loadbay_loader.graph.errors import BadRequest, InvalidParameter, LoadIdNotFound, NeptuneError
from loadbay_loader.settings import LoaderSettings
from loadbay_platform.auth import Principal, current_principal

OK = "200 OK"


@dataclass(frozen=True)
class LoaderApi:
    """The bulk loader's settings, as its routes need them."""

    settings: LoaderSettings
    access: LoaderAccess
    region: str


def _loader_api(request: Request) -> LoaderApi:
    return cast(LoaderApi, request.app.state.loader_api)


Api = Annotated[LoaderApi, Depends(_loader_api)]

_bearer = HTTPBearer(
    auto_error=False, description="A loadbay JWT (`loadbay token` mints one in dev mode)"
)


async def _caller(
    request: Request,
    api: Api,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """The bearer token's user, unless the loader runs without authentication."""
    if not api.settings.neptune_auth:
        return None
    try:
        user = current_principal(request, credentials)
    except HTTPException as exc:
        raise Unauthenticated(str(exc.detail)) from exc
    if "\x00" in user.user_id:
        raise Unauthenticated("invalid token: its subject contains a NUL character")
    return user


Caller = Annotated[Principal | None, Depends(_caller)]


class NeptuneErrorBody(BaseModel):
    """Every error of this API, as Neptune's REST API returns it."""

    code: str = Field(examples=["InvalidParameterException"])
    requestId: str = Field(examples=["0dbcded3-a9a1-4a25-b419-828c46342e47"])
    detailedMessage: str


_ERRORS = {
    400: "BadRequestException, InvalidParameterException, MissingParameterException,"
    " PreconditionsFailedException (a reset while a load runs),"
    " LoadUrlAccessDeniedException (a source the loader may not read), S3Exception",
    401: "AccessDeniedException: no valid bearer token",
    403: "AccessDeniedException: the caller is not one of the graph's users"
    " (LOADBAY_LOADER_GRAPH_USERS), or cancels a load someone else started",
    404: "BulkLoadIdNotFoundException (no such load, or one the caller may not see),"
    " NotFoundException (not in the graph)",
    408: "ClientTimeoutException: the graph stayed busy, so it was not reset (retry)",
    413: "RequestEntityTooLargeException: the body is over LOADBAY_LOADER_MAX_REQUEST_BYTES",
    500: "InternalFailureException",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI description of a route's errors (401 and 500 are every route's)."""
    return {
        status: {"model": NeptuneErrorBody, "description": _ERRORS[status]}
        for status in (*statuses, 401, 500)
    }


class RequestTooLarge(NeptuneError):
    code = "RequestEntityTooLargeException"
    http_status = 413


def error_response(
    code: str, message: str, status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "requestId": str(uuid.uuid4()), "detailedMessage": message},
        status_code=status,
        headers=headers,
    )


_GUARD_CODES = {400: "BadRequestException", 413: "RequestEntityTooLargeException"}


def guard_error_body(status: int, detail: str) -> dict[str, str]:
    return {
        "code": _GUARD_CODES.get(status, "BadRequestException"),
        "requestId": str(uuid.uuid4()),
        "detailedMessage": detail,
    }


def positive_int(name: str, value: str | None, default: int, maximum: int | None = None) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1 or (maximum is not None and number > maximum):
        bound = f"from 1 to {maximum}" if maximum else "a positive integer"
        raise InvalidParameter(f"Invalid value for {name}: {value!r}; expected {bound}")
    return number


def text(name: str, value: str) -> str:
    """PostgreSQL text cannot hold NUL: refuse it here rather than fail in the query."""
    if "\x00" in value:
        raise InvalidParameter(f"Invalid value for {name}: it contains a NUL character")
    return value


def check_load_id(load_id: str) -> None:
    try:
        uuid.UUID(load_id)
    except ValueError as exc:
        raise LoadIdNotFound(f"The load with id = {load_id} does not exist") from exc


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is larger than `limit` (never held whole)."""
    too_large = RequestTooLarge(
        f"The request body is larger than {limit} bytes (LOADBAY_LOADER_MAX_REQUEST_BYTES)"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise too_large
    return bytes(raw)


async def request_parameters(request: Request, limit: int) -> dict[str, Any]:
    """A load request's parameters: a JSON object, a form, or (no body) the query string."""
    raw = await read_body(request, limit)
    content_type = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(raw.decode("utf-8", "replace")))
    if not raw.strip():
        if request.query_params:
            return dict(request.query_params)
        raise BadRequest("The request has no body: send the load parameters as a JSON object")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest(
            "The request body is not a load request: its JSON nests too deeply"
        ) from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object of load parameters")
    return body
