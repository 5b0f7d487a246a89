"""Data products: create, list, show, delete, and their segments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from loadbay_distribution import products, repository
from loadbay_distribution.products import (
    ProductCreate,
)
from loadbay_distribution.routes.views import (
    ProductName,
    SegmentCreate,
    product_view,
)
from loadbay_platform.auth import CurrentPrincipal
from loadbay_platform.dependencies import DbPool

router = APIRouter()


@router.post("/data-products", status_code=201, tags=["data products"])
async def create_product(
    body: ProductCreate, principal: CurrentPrincipal, pool: DbPool
) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        product = await products.create_product(conn, body, principal)
        return product_view(product, await repository.list_segments(conn, product.id))


@router.get("/data-products", tags=["data products"])
async def list_products(principal: CurrentPrincipal, pool: DbPool) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        return [
            product_view(p, await repository.list_segments(conn, p.id))
            for p in await repository.list_products(conn, principal.user_id)
        ]


@router.get("/data-products/{name}", tags=["data products"])
async def show_product(
    name: ProductName, principal: CurrentPrincipal, pool: DbPool
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        product = await products.product_for(conn, name, principal)
        view = product_view(product, await repository.list_segments(conn, product.id))
        schedule = await repository.get_schedule(conn, product.id)
        view["schedule"] = (
            {"cron": schedule.cron, "next_run_at": schedule.next_run_at.isoformat()}
            if schedule else None
        )  # fmt: skip
        return view


@router.delete("/data-products/{name}", status_code=204, tags=["data products"])
async def delete_product(name: ProductName, principal: CurrentPrincipal, pool: DbPool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        product = await products.product_for(conn, name, principal)
        await repository.delete_product(conn, product.id)


@router.post("/data-products/{name}/segments", status_code=201, tags=["data products"])
async def add_segment(
    name: ProductName, body: SegmentCreate, principal: CurrentPrincipal, pool: DbPool
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        product = await products.product_for(conn, name, principal)
        await products.add_segment(conn, product, body.name)
