"""Bulk loads (`/loader`): start one (Neptune StartLoaderJob), list them, a load's status,
cancel one."""

from __future__ import annotations

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loadbay_loader.graph import loads
from loadbay_loader.graph.errors import MissingParameter
from loadbay_loader.graph.request import parse_bool, parse_request
from loadbay_loader.graph.routes.neptune import (
    OK,
    Api,
    Caller,
    LoaderApi,
    check_load_id,
    positive_int,
    request_parameters,
    responses,
)
from loadbay_platform.auth import Principal
from loadbay_platform.dependencies import DbPool, ObjectStorage

router = APIRouter(prefix="/loader", tags=["bulk loader"])


@router.post("", responses=responses(400, 403, 413))
async def start_load(
    request: Request, user: Caller, api: Api, pool: DbPool, s3: ObjectStorage
) -> JSONResponse:
    """Start a load (Neptune StartLoaderJob): a JSON body or URL-encoded parameters.
    Only the graph's users may; the source must be one the loader may read."""
    api.access.require_graph_user(user, "start loads")
    body = await request_parameters(request, api.settings.max_request_bytes)
    load = parse_request(body)
    api.access.require_readable(user, load)
    load_id = await loads.submit(pool, s3, api.settings, api.region, load, user)
    return JSONResponse({"status": OK, "payload": {"loadId": load_id}})


@router.get("", responses=responses(400, 404))
async def list_or_status(request: Request, user: Caller, api: Api, pool: DbPool) -> JSONResponse:
    """List load ids (newest first), or the status of `loadId`. The graph's users see
    every load; anyone else, only the loads they started."""
    params = request.query_params
    if params.get("loadId"):
        return await _status(params["loadId"], dict(params), user, api, pool)
    limit = positive_int("limit", params.get("limit"), 100, maximum=100)
    queued = parse_bool("includeQueuedLoads", params.get("includeQueuedLoads"), True)
    ids = await loads.list_ids(pool, limit, queued, api.access.listed_requester(user))
    return JSONResponse({"status": OK, "payload": {"loadIds": ids}})


@router.get("/{load_id}", responses=responses(400, 404))
async def get_status(
    load_id: str, request: Request, user: Caller, api: Api, pool: DbPool
) -> JSONResponse:
    """A load's status (Neptune Get-Status): details, errors, page, errorsPerPage."""
    return await _status(load_id, dict(request.query_params), user, api, pool)


@router.delete("/{load_id}", responses=responses(403, 404))
async def cancel_load(load_id: str, user: Caller, api: Api, pool: DbPool) -> JSONResponse:
    """Cancel a queued or running load (LOAD_CANCELLED_BY_USER): only its requester may."""
    check_load_id(load_id)
    api.access.require_cancellable(user, load_id, await loads.requester_of(pool, load_id))
    await loads.cancel(pool, load_id)
    return JSONResponse({"status": OK})


@router.delete("", responses=responses(400, 403, 404))
async def cancel_load_by_query(
    request: Request, user: Caller, api: Api, pool: DbPool
) -> JSONResponse:
    load_id = request.query_params.get("loadId")
    if not load_id:
        raise MissingParameter("loadId")
    return await cancel_load(load_id, user, api, pool)


async def _status(
    load_id: str,
    params: dict[str, str],
    user: Principal | None,
    api: LoaderApi,
    pool: asyncpg.Pool,
) -> JSONResponse:
    check_load_id(load_id)
    api.access.require_visible(user, load_id, await loads.requester_of(pool, load_id))
    payload = await loads.status_payload(
        pool,
        load_id,
        details=parse_bool("details", params.get("details"), False),
        errors=parse_bool("errors", params.get("errors"), False),
        page=positive_int("page", params.get("page"), 1),
        per_page=positive_int("errorsPerPage", params.get("errorsPerPage"), 10),
    )
    return JSONResponse({"status": OK, "payload": payload})
