"""The bulk-loader HTTP API, shaped as Amazon Neptune's (`/loader`), plus read routes to
check what was loaded (`/graph/...`, `/rdf/...`)."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from loadbay_loader import graph_store, load_jobs, rdf_store
from loadbay_loader.load_request import parse_bool, parse_request
from loadbay_loader.neptune_errors import (
    BadRequest,
    InvalidParameter,
    LoadIdNotFound,
    MissingParameter,
    NeptuneError,
)
from loadbay_loader.settings import LoaderSettings
from loadbay_platform.auth import Principal, principal_of
from loadbay_platform.service import Resources

OK = "200 OK"


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


def add_routes(app: FastAPI, res: Resources, settings: LoaderSettings) -> None:
    pool = res.pool
    region = settings.region or res.settings.s3.region

    @app.exception_handler(NeptuneError)
    async def neptune_error(_: Request, exc: NeptuneError) -> JSONResponse:
        return JSONResponse(
            {"code": exc.code, "requestId": str(uuid.uuid4()), "detailedMessage": exc.message},
            status_code=exc.http_status,
        )

    async def caller(request: Request) -> Principal | None:
        """The bearer token's user, unless the loader runs without authentication."""
        if not settings.neptune_auth:
            return None
        return await principal_of(request)

    @app.post("/loader", tags=["bulk loader"])
    async def start_load(
        request: Request, user: Principal | None = Depends(caller)
    ) -> JSONResponse:
        """Start a load (Neptune StartLoaderJob): a JSON body or URL-encoded parameters."""
        body = await _request_body(request)
        load = parse_request(body)
        load_id = await load_jobs.submit(pool, res.s3, settings, region, load, user)
        return JSONResponse({"status": OK, "payload": {"loadId": load_id}})

    @app.get("/loader", tags=["bulk loader"])
    async def list_or_status(
        request: Request, user: Principal | None = Depends(caller)
    ) -> JSONResponse:
        """List load ids (newest first), or the status of `loadId`."""
        params = request.query_params
        if params.get("loadId"):
            return await _status(params["loadId"], dict(params))
        limit = _positive_int("limit", params.get("limit"), 100, maximum=100)
        queued = parse_bool("includeQueuedLoads", params.get("includeQueuedLoads"), True)
        ids = await load_jobs.list_ids(pool, limit, queued)
        return JSONResponse({"status": OK, "payload": {"loadIds": ids}})

    @app.get("/loader/{load_id}", tags=["bulk loader"])
    async def get_status(
        load_id: str, request: Request, user: Principal | None = Depends(caller)
    ) -> JSONResponse:
        """A load's status (Neptune Get-Status): details, errors, page, errorsPerPage."""
        return await _status(load_id, dict(request.query_params))

    async def _status(load_id: str, params: dict[str, str]) -> JSONResponse:
        _check_load_id(load_id)
        payload = await load_jobs.status_payload(
            pool,
            load_id,
            details=parse_bool("details", params.get("details"), False),
            errors=parse_bool("errors", params.get("errors"), False),
            page=_positive_int("page", params.get("page"), 1),
            per_page=_positive_int("errorsPerPage", params.get("errorsPerPage"), 10),
        )
        return JSONResponse({"status": OK, "payload": payload})

    @app.delete("/loader/{load_id}", tags=["bulk loader"])
    async def cancel_load(load_id: str, user: Principal | None = Depends(caller)) -> JSONResponse:
        """Cancel a queued or running load (LOAD_CANCELLED_BY_USER)."""
        _check_load_id(load_id)
        await load_jobs.cancel(pool, load_id)
        return JSONResponse({"status": OK})

    @app.delete("/loader", tags=["bulk loader"])
    async def cancel_load_by_query(
        request: Request, user: Principal | None = Depends(caller)
    ) -> JSONResponse:
        load_id = request.query_params.get("loadId")
        if not load_id:
            raise MissingParameter("loadId")
        return await cancel_load(load_id, user)

    @app.get("/graph/vertices/{vertex_id}", tags=["graph"])
    async def get_vertex(
        vertex_id: str, request: Request, user: Principal | None = Depends(caller)
    ) -> JSONResponse:
        """A vertex with its labels and properties (`idSpace` for openCypher id spaces)."""
        async with pool.acquire() as conn:
            found = await graph_store.get_vertex(
                conn, vertex_id, request.query_params.get("idSpace", "")
            )
        if found is None:
            raise NotFoundInGraph(f"no vertex with id {vertex_id!r}")
        return JSONResponse(found)

    @app.get("/graph/edges/{edge_id}", tags=["graph"])
    async def get_edge(edge_id: str, user: Principal | None = Depends(caller)) -> JSONResponse:
        """An edge with its label, endpoints and properties."""
        async with pool.acquire() as conn:
            found = await graph_store.get_edge(conn, edge_id)
        if found is None:
            raise NotFoundInGraph(f"no edge with id {edge_id!r}")
        return JSONResponse(found)

    @app.get("/graph/summary", tags=["graph"])
    async def graph_summary(user: Principal | None = Depends(caller)) -> JSONResponse:
        """Vertex and edge counts, in all and by label."""
        async with pool.acquire() as conn:
            totals = await graph_store.count_graph(conn)
            by_label = await graph_store.count_by_label(conn)
            quads = await rdf_store.count_quads(conn)
        return JSONResponse({**totals, "byLabel": by_label, "quads": quads})

    @app.get("/rdf/statements", tags=["graph"])
    async def statements(
        request: Request, user: Principal | None = Depends(caller)
    ) -> JSONResponse:
        """RDF statements by subject (an N-Triples term, e.g. `<http://example.org/s>`)."""
        params = request.query_params
        subject = params.get("subject")
        if not subject:
            raise MissingParameter("subject")
        limit = _positive_int("limit", params.get("limit"), 1000, maximum=10_000)
        async with pool.acquire() as conn:
            found = await rdf_store.triples_by_subject(conn, subject, params.get("graph"), limit)
        return JSONResponse({"subject": subject, "statements": found})


class NotFoundInGraph(NeptuneError):
    code = "NotFoundException"
    http_status = 404


def _check_load_id(load_id: str) -> None:
    try:
        uuid.UUID(load_id)
    except ValueError as exc:
        raise LoadIdNotFound(f"The load with id = {load_id} does not exist") from exc


async def _request_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
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
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object of load parameters")
    return body
