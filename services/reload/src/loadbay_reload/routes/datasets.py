"""Datasets: create, list, show, delete."""

from __future__ import annotations

from fastapi import APIRouter

from loadbay_platform.auth import CurrentPrincipal
from loadbay_platform.dependencies import DbPool
from loadbay_reload import datasets
from loadbay_reload.datasets import Dataset, DatasetCreate
from loadbay_reload.routes.views import Domain, Name, load_dataset

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.post("", status_code=201)
async def create_dataset(body: DatasetCreate, principal: CurrentPrincipal, pool: DbPool) -> Dataset:
    async with pool.acquire() as conn, conn.transaction():
        return await datasets.create_dataset(conn, body, principal)


@router.get("")
async def list_datasets(principal: CurrentPrincipal, pool: DbPool) -> list[Dataset]:
    async with pool.acquire() as conn:
        return await datasets.list_datasets(conn, principal)


@router.get("/{domain}/{name}")
async def show_dataset(
    domain: Domain, name: Name, principal: CurrentPrincipal, pool: DbPool
) -> Dataset:
    return await load_dataset(pool, domain, name, principal)


@router.delete("/{domain}/{name}", status_code=204)
async def delete_dataset(
    domain: Domain, name: Name, principal: CurrentPrincipal, pool: DbPool
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        dataset = await datasets.get_dataset(conn, domain, name, principal)
        await datasets.delete_dataset(conn, dataset, principal)
