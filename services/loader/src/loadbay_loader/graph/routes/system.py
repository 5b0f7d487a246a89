"""Neptune's fast reset (`/system`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loadbay_loader.graph import reset
from loadbay_loader.graph.routes.neptune import Api, Caller, read_body, responses
from loadbay_platform.dependencies import DbPool

router = APIRouter(tags=["bulk loader"])


@router.post("/system", responses=responses(400, 403, 408, 413))
async def system(request: Request, user: Caller, api: Api, pool: DbPool) -> JSONResponse:
    """Neptune's fast reset: `initiateDatabaseReset` returns a token (valid 60 minutes),
    `performDatabaseReset` with it empties the graph. Only the graph's users may; refused
    while a load is running."""
    api.access.require_graph_user(user, "reset the graph")
    raw = await read_body(request, api.settings.max_request_bytes)
    params = reset.parse_system_request(
        raw, request.headers.get("content-type", ""), request.query_params.multi_items()
    )
    answer = await reset.handle(pool, params, user.user_id if user else None)
    return JSONResponse(answer)
