"""Datasets of a data product."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from loadbay_distribution import products, repository
from loadbay_distribution.products import (
    DatasetCreate,
)
from loadbay_distribution.routes.views import (
    DatasetName,
    ProductName,
)
from loadbay_platform.auth import CurrentPrincipal
from loadbay_platform.dependencies import DbPool
from loadbay_platform.errors import NotFound

router = APIRouter()


@router.post("/data-products/{name}/datasets", status_code=201, tags=["datasets"])
async def add_dataset(
    name: ProductName, body: DatasetCreate, principal: CurrentPrincipal, pool: DbPool
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        product = await products.product_for(conn, name, principal)
        await products.add_dataset(conn, product, body)


@router.get("/data-products/{name}/datasets", tags=["datasets"])
async def list_datasets(
    name: ProductName, principal: CurrentPrincipal, pool: DbPool
) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        product = await products.product_for(conn, name, principal)
        rows = await repository.list_datasets(conn, product.id)
    return [{"name": d.name, "segment": d.segment, "grain": list(d.grain),
             "columns": d.columns} for d in rows]  # fmt: skip


@router.delete("/data-products/{name}/datasets/{dataset}", status_code=204, tags=["datasets"])
async def delete_dataset(
    name: ProductName, dataset: DatasetName, principal: CurrentPrincipal, pool: DbPool
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        product = await products.product_for(conn, name, principal)
        if not await repository.delete_dataset(conn, product.id, dataset):
            raise NotFound(f"no dataset {dataset!r} in {name}")
