"""Client workspaces of a data product."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from loadbay_distribution import products, repository
from loadbay_distribution.products import (
    WorkspaceCreate,
)
from loadbay_distribution.routes.views import (
    ClientId,
    ProductName,
)
from loadbay_platform.auth import CurrentPrincipal
from loadbay_platform.dependencies import DbPool
from loadbay_platform.errors import NotFound

router = APIRouter()


@router.post("/data-products/{name}/workspaces", status_code=201, tags=["workspaces"])
async def add_workspace(
    name: ProductName, body: WorkspaceCreate, principal: CurrentPrincipal, pool: DbPool
) -> dict[str, str]:
    async with pool.acquire() as conn, conn.transaction():
        product = await products.product_for(conn, name, principal)
        schema = await products.add_workspace(conn, product, body)
    return {"client_id": body.client_id, "schema": schema}


@router.get("/data-products/{name}/workspaces", tags=["workspaces"])
async def list_workspaces(
    name: ProductName, principal: CurrentPrincipal, pool: DbPool
) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        product = await products.product_for(conn, name, principal)
        rows = await repository.list_workspaces(conn, product.id)
    return [
        {
            "client_id": w.client_id, "segment": w.segment, "schema": w.schema_name,
            "created_at": w.created_at.isoformat(),
            "datasets": {
                d: {**s, "needs_recovery": s["failure_streak"] >= 3}
                for d, s in w.states.items()
            },
        }
        for w in rows
    ]  # fmt: skip


@router.delete("/data-products/{name}/workspaces/{client_id}", status_code=204,
            tags=["workspaces"])  # fmt: skip
async def delete_workspace(
    name: ProductName, client_id: ClientId, principal: CurrentPrincipal, pool: DbPool
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        product = await products.product_for(conn, name, principal)
        if not await repository.delete_workspace(conn, product.id, client_id):
            raise NotFound(f"no workspace {client_id!r} in {name}")
