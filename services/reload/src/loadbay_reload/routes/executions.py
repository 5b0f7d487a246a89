"""Executions: a dataset's history (View All Executions) and one execution."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from loadbay_platform.auth import CurrentPrincipal
from loadbay_platform.dependencies import DbPool
from loadbay_reload import datasets, repository
from loadbay_reload.errors import ExecutionNotFound
from loadbay_reload.routes.views import (
    Domain,
    ExecutionId,
    ExecutionView,
    Name,
    execution_view,
    load_dataset,
)

router = APIRouter(tags=["executions"])


@router.get("/datasets/{domain}/{name}/executions")
async def list_executions(
    domain: Domain,
    name: Name,
    principal: CurrentPrincipal,
    pool: DbPool,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ExecutionView]:
    dataset = await load_dataset(pool, domain, name, principal)
    async with pool.acquire() as conn:
        rows = await repository.list_executions(conn, dataset.id, limit)
    return [execution_view(r) for r in rows]


@router.get("/executions/{execution_id}")
async def show_execution(
    execution_id: ExecutionId, principal: CurrentPrincipal, pool: DbPool
) -> ExecutionView:
    async with pool.acquire() as conn:
        row = await repository.get_execution(conn, execution_id)
        if row is not None:
            await datasets.get_dataset(conn, row.domain, row.dataset_name, principal)
    if row is None:
        raise ExecutionNotFound(execution_id)
    return execution_view(row)
