"""Runs of a binding: run now, list, show one with its copied, skipped and failed objects."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from loadbay_ingestion import bindings, repository, runs
from loadbay_ingestion.routes.views import Context, run_view
from loadbay_platform.auth import CurrentPrincipal
from loadbay_platform.dependencies import DbPool
from loadbay_platform.errors import NotFound

router = APIRouter()


@router.post("/bindings/{domain}/{dataset}/runs", status_code=202, tags=["runs"])
async def run_now(
    domain: str, dataset: str, principal: CurrentPrincipal, pool: DbPool, ctx: Context
) -> dict[str, str]:
    """Run now. The run is queued and starts when a slot is free (throttling); 409 while a
    run of this dataset is queued or running."""
    async with pool.acquire() as conn, conn.transaction():
        binding, _ = await bindings.binding_for(conn, f"{domain}/{dataset}", principal)
        run_id = await runs.queue_run(conn, binding, "api", principal.user_id)
    ctx.wake()
    return {"run_id": run_id, "status": "queued"}


@router.get("/bindings/{domain}/{dataset}/runs", tags=["runs"])
async def list_runs(
    domain: str,
    dataset: str,
    principal: CurrentPrincipal,
    pool: DbPool,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        binding, _ = await bindings.binding_for(conn, f"{domain}/{dataset}", principal)
        return [run_view(r) for r in await repository.list_runs(conn, binding.id, limit)]


@router.get("/runs/{run_id}", tags=["runs"])
async def show_run(run_id: str, principal: CurrentPrincipal, pool: DbPool) -> dict[str, Any]:
    """A run with its copied, skipped and failed objects."""
    async with pool.acquire() as conn:
        run = await repository.get_run(conn, run_id)
        binding = await repository.binding_by_id(conn, run.binding_id) if run else None
        if run is None or binding is None:
            raise NotFound(f"no run {run_id}")
        await bindings.binding_for(conn, binding.dataset, principal)
        view = run_view(run, await repository.run_objects(conn, run_id))
        view["dataset"] = binding.dataset
        return view
