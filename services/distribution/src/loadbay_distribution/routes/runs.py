"""Runs of a data product (run now, list, show one) and its schedule."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from loadbay_distribution import products, repository, runs, scheduler
from loadbay_distribution.routes.views import (
    ProductName,
    RunId,
    ScheduleSet,
    run_view,
)
from loadbay_platform.auth import CurrentPrincipal
from loadbay_platform.dependencies import DbPool, ObjectStorage
from loadbay_platform.errors import NotFound

router = APIRouter()


@router.post("/data-products/{name}/runs", status_code=202, tags=["runs"])
async def start_run(
    name: ProductName, principal: CurrentPrincipal, pool: DbPool, s3: ObjectStorage
) -> dict[str, str]:
    """Start a run now; 409 while one of this data product runs."""
    async with pool.acquire() as conn, conn.transaction():
        product = await products.product_for(conn, name, principal)
        run_id = await runs.start_run(conn, s3, product, "api", principal.user_id)
    return {"run_id": run_id}


@router.get("/data-products/{name}/runs", tags=["runs"])
async def list_runs(
    name: ProductName,
    principal: CurrentPrincipal,
    pool: DbPool,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        product = await products.product_for(conn, name, principal)
        return [run_view(r) for r in await repository.list_runs(conn, product.id, limit)]


@router.get("/runs/{run_id}", tags=["runs"])
async def show_run(run_id: RunId, principal: CurrentPrincipal, pool: DbPool) -> dict[str, Any]:
    """A run with its per-workspace, per-dataset results."""
    async with pool.acquire() as conn:
        run = await repository.get_run(conn, run_id)
        product = await repository.product_by_id(conn, run.data_product_id) if run else None
        if run is None or product is None or product.owner_id != principal.user_id:
            raise NotFound(f"no run {run_id}")
        return run_view(run, await repository.run_results(conn, run_id))


@router.put("/data-products/{name}/schedule", tags=["runs"])
async def set_schedule(
    name: ProductName, body: ScheduleSet, principal: CurrentPrincipal, pool: DbPool
) -> dict[str, str]:
    """Run on a cron schedule (five fields, UTC)."""
    next_run_at = scheduler.next_time(body.cron)
    async with pool.acquire() as conn, conn.transaction():
        product = await products.product_for(conn, name, principal)
        await repository.upsert_schedule(conn, product.id, body.cron, next_run_at)
    return {"cron": body.cron, "next_run_at": next_run_at.isoformat()}


@router.delete("/data-products/{name}/schedule", status_code=204, tags=["runs"])
async def delete_schedule(name: ProductName, principal: CurrentPrincipal, pool: DbPool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        product = await products.product_for(conn, name, principal)
        await repository.delete_schedule(conn, product.id)
