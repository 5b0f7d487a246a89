"""The bulk-loader HTTP API, shaped as Amazon Neptune's (`/loader`), plus read routes to
check what was loaded (`/graph/...`, `/rdf/...`). Who may do what: access.py."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from loadbay_loader.graph import loads, rdf_store, reset
from loadbay_loader.graph import read_store as graph_store
from loadbay_loader.graph.access import LoaderAccess, Unauthenticated, check_startup
from loadbay_loader.graph.errors import (
    BadRequest,
    InvalidParameter,
    LoadIdNotFound,
    MissingParameter,
    NeptuneError,
)
from loadbay_loader.graph.request import parse_bool, parse_request
from loadbay_loader.graph.values import json_element
from loadbay_loader.settings import LoaderSettings
from loadbay_platform.auth import Principal, current_principal
from loadbay_platform.service import Resources

log = logging.getLogger(__name__)
OK = "200 OK"


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


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": NeptuneErrorBody, "description": _ERRORS[status]}
        for status in (*statuses, 401, 500)
    }


class NotFoundInGraph(NeptuneError):
    code = "NotFoundException"
    http_status = 404


class RequestTooLarge(NeptuneError):
    code = "RequestEntityTooLargeException"
    http_status = 413


def _positive_int(name: str, value: str | None, default: int, maximum: int | None = None) -> int:
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


def _text(name: str, value: str) -> str:
    """PostgreSQL text cannot hold NUL: refuse it here rather than fail in the query."""
    if "\x00" in value:
        raise InvalidParameter(f"Invalid value for {name}: it contains a NUL character")
    return value


def add_routes(app: FastAPI, res: Resources, settings: LoaderSettings) -> None:
    check_startup(settings, res.settings)
    pool = res.pool
    region = settings.region or res.settings.s3.region
    access = LoaderAccess.of(settings, res.settings)
    bearer = HTTPBearer(
        auto_error=False, description="A loadbay JWT (`loadbay token` mints one in dev mode)"
    )

    # What the platform's request guard refuses (oversized, NUL, too deep) in Neptune's shape.
    app.state.error_body = _guard_error_body

    @app.exception_handler(NeptuneError)
    async def neptune_error(_: Request, exc: NeptuneError) -> JSONResponse:
        headers: dict[str, str] | None = getattr(exc, "headers", None)
        return _error_response(exc.code, exc.message, exc.http_status, headers)

    @app.exception_handler(Exception)
    async def internal_failure(_: Request, exc: Exception) -> JSONResponse:
        log.exception("bulk-loader API: unexpected error", exc_info=exc)
        return _error_response(
            "InternalFailureException", "The request processing has failed", 500, None
        )

    async def caller(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> Principal | None:
        """The bearer token's user, unless the loader runs without authentication."""
        if not settings.neptune_auth:
            return None
        try:
            user = current_principal(request, credentials)
        except HTTPException as exc:
            raise Unauthenticated(str(exc.detail)) from exc
        if "\x00" in user.user_id:
            raise Unauthenticated("invalid token: its subject contains a NUL character")
        return user

    @app.post("/loader", tags=["bulk loader"], responses=_responses(400, 403, 413))
    async def start_load(
        request: Request, user: Principal | None = Depends(caller)
    ) -> JSONResponse:
        """Start a load (Neptune StartLoaderJob): a JSON body or URL-encoded parameters.
        Only the graph's users may; the source must be one the loader may read."""
        access.require_graph_user(user, "start loads")
        body = await _request_body(request, settings.max_request_bytes)
        load = parse_request(body)
        access.require_readable(user, load)
        load_id = await loads.submit(pool, res.s3, settings, region, load, user)
        return JSONResponse({"status": OK, "payload": {"loadId": load_id}})

    @app.get("/loader", tags=["bulk loader"], responses=_responses(400, 404))
    async def list_or_status(
        request: Request, user: Principal | None = Depends(caller)
    ) -> JSONResponse:
        """List load ids (newest first), or the status of `loadId`. The graph's users see
        every load; anyone else, only the loads they started."""
        params = request.query_params
        if params.get("loadId"):
            return await _status(params["loadId"], dict(params), user)
        limit = _positive_int("limit", params.get("limit"), 100, maximum=100)
        queued = parse_bool("includeQueuedLoads", params.get("includeQueuedLoads"), True)
        ids = await loads.list_ids(pool, limit, queued, access.listed_requester(user))
        return JSONResponse({"status": OK, "payload": {"loadIds": ids}})

    @app.get("/loader/{load_id}", tags=["bulk loader"], responses=_responses(400, 404))
    async def get_status(
        load_id: str, request: Request, user: Principal | None = Depends(caller)
    ) -> JSONResponse:
        """A load's status (Neptune Get-Status): details, errors, page, errorsPerPage."""
        return await _status(load_id, dict(request.query_params), user)

    async def _status(load_id: str, params: dict[str, str], user: Principal | None) -> JSONResponse:
        _check_load_id(load_id)
        access.require_visible(user, load_id, await loads.requester_of(pool, load_id))
        payload = await loads.status_payload(
            pool,
            load_id,
            details=parse_bool("details", params.get("details"), False),
            errors=parse_bool("errors", params.get("errors"), False),
            page=_positive_int("page", params.get("page"), 1),
            per_page=_positive_int("errorsPerPage", params.get("errorsPerPage"), 10),
        )
        return JSONResponse({"status": OK, "payload": payload})

    @app.delete("/loader/{load_id}", tags=["bulk loader"], responses=_responses(403, 404))
    async def cancel_load(load_id: str, user: Principal | None = Depends(caller)) -> JSONResponse:
        """Cancel a queued or running load (LOAD_CANCELLED_BY_USER): only its requester may."""
        _check_load_id(load_id)
        access.require_cancellable(user, load_id, await loads.requester_of(pool, load_id))
        await loads.cancel(pool, load_id)
        return JSONResponse({"status": OK})

    @app.delete("/loader", tags=["bulk loader"], responses=_responses(400, 403, 404))
    async def cancel_load_by_query(
        request: Request, user: Principal | None = Depends(caller)
    ) -> JSONResponse:
        load_id = request.query_params.get("loadId")
        if not load_id:
            raise MissingParameter("loadId")
        return await cancel_load(load_id, user)

    @app.post("/system", tags=["bulk loader"], responses=_responses(400, 403, 408, 413))
    async def system(request: Request, user: Principal | None = Depends(caller)) -> JSONResponse:
        """Neptune's fast reset: `initiateDatabaseReset` returns a token (valid 60 minutes),
        `performDatabaseReset` with it empties the graph. Only the graph's users may; refused
        while a load is running."""
        access.require_graph_user(user, "reset the graph")
        raw = await _read_body(request, settings.max_request_bytes)
        params = reset.parse_system_request(
            raw, request.headers.get("content-type", ""), request.query_params.multi_items()
        )
        answer = await reset.handle(pool, params, user.user_id if user else None)
        return JSONResponse(answer)

    graph_errors = _responses(400, 403, 404)

    @app.get("/graph/vertices/{vertex_id}", tags=["graph"], responses=graph_errors)
    async def get_vertex(
        vertex_id: str, request: Request, user: Principal | None = Depends(caller)
    ) -> JSONResponse:
        """A vertex with its labels and properties (`idSpace` for openCypher id spaces). Values
        are JSON; a Date is GraphSON's `{"@type": "g:Date", "@value": <epoch ms>}`."""
        access.require_graph_user(user, "read the graph")
        id_space = _text("idSpace", request.query_params.get("idSpace", ""))
        async with pool.acquire() as conn:
            found = await graph_store.get_vertex(conn, _text("id", vertex_id), id_space)
        if found is None:
            raise NotFoundInGraph(f"no vertex with id {vertex_id!r}")
        return JSONResponse(json_element(found))

    @app.get("/graph/edges/{edge_id}", tags=["graph"], responses=graph_errors)
    async def get_edge(edge_id: str, user: Principal | None = Depends(caller)) -> JSONResponse:
        """An edge with its label, endpoints and properties (values as for a vertex)."""
        access.require_graph_user(user, "read the graph")
        async with pool.acquire() as conn:
            found = await graph_store.get_edge(conn, _text("id", edge_id))
        if found is None:
            raise NotFoundInGraph(f"no edge with id {edge_id!r}")
        return JSONResponse(json_element(found))

    @app.get("/graph/summary", tags=["graph"], responses=_responses(403))
    async def graph_summary(user: Principal | None = Depends(caller)) -> JSONResponse:
        """Vertex and edge counts, in all and by label."""
        access.require_graph_user(user, "read the graph")
        async with pool.acquire() as conn:
            totals = await graph_store.count_graph(conn)
            by_label = await graph_store.count_by_label(conn)
            quads = await rdf_store.count_quads(conn)
        return JSONResponse({**totals, "byLabel": by_label, "quads": quads})

    @app.get("/rdf/statements", tags=["graph"], responses=_responses(400, 403))
    async def statements(
        request: Request, user: Principal | None = Depends(caller)
    ) -> JSONResponse:
        """RDF statements by subject (an N-Triples term, e.g. `<http://example.org/s>`)."""
        access.require_graph_user(user, "read the graph")
        params = request.query_params
        subject = params.get("subject")
        if not subject:
            raise MissingParameter("subject")
        graph = params.get("graph")
        limit = _positive_int("limit", params.get("limit"), 1000, maximum=10_000)
        async with pool.acquire() as conn:
            found = await rdf_store.triples_by_subject(
                conn, _text("subject", subject), graph and _text("graph", graph), limit
            )
        return JSONResponse({"subject": subject, "statements": found})


def _error_response(
    code: str, message: str, status: int, headers: dict[str, str] | None
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "requestId": str(uuid.uuid4()), "detailedMessage": message},
        status_code=status,
        headers=headers,
    )


def _check_load_id(load_id: str) -> None:
    try:
        uuid.UUID(load_id)
    except ValueError as exc:
        raise LoadIdNotFound(f"The load with id = {load_id} does not exist") from exc


async def _read_body(request: Request, limit: int) -> bytes:
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


async def _request_body(request: Request, limit: int) -> dict[str, Any]:
    raw = await _read_body(request, limit)
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


_GUARD_CODES = {400: "BadRequestException", 413: "RequestEntityTooLargeException"}


def _guard_error_body(status: int, detail: str) -> dict[str, str]:
    return {
        "code": _GUARD_CODES.get(status, "BadRequestException"),
        "requestId": str(uuid.uuid4()),
        "detailedMessage": detail,
    }
