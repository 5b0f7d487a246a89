"""Bindings of datasets to connections, and their schedules."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from loadbay_ingestion import bindings, connections, repository, scheduler
from loadbay_ingestion.bindings import BindingCreate, ScheduleSet
from loadbay_ingestion.routes.views import binding_view
from loadbay_platform.auth import CurrentPrincipal
from loadbay_platform.dependencies import DbPool
from loadbay_platform.errors import NotFound

router = APIRouter()


@router.post("/connections/{name}/bindings", status_code=201, tags=["bindings"])
async def bind(
    name: str, body: BindingCreate, principal: CurrentPrincipal, pool: DbPool
) -> dict[str, Any]:
    """Bind a dataset to this connection's bucket: objects under `directory_path` with
    extension `file_type` are ingested into it."""
    async with pool.acquire() as conn, conn.transaction():
        found = await connections.connection_for(conn, name, principal)
        binding = await bindings.create_binding(conn, found, body, principal)
        return binding_view(binding, name, None)


@router.get("/connections/{name}/bindings", tags=["bindings"])
async def list_bindings(
    name: str, principal: CurrentPrincipal, pool: DbPool
) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        found = await connections.connection_for(conn, name, principal)
        return [
            binding_view(b, name, await repository.get_schedule(conn, b.id))
            for b in await repository.list_bindings(conn, found.id)
        ]


@router.get("/bindings/{domain}/{dataset}", tags=["bindings"])
async def show_binding(
    domain: str, dataset: str, principal: CurrentPrincipal, pool: DbPool
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        binding, found = await bindings.binding_for(conn, f"{domain}/{dataset}", principal)
        return binding_view(binding, found.name, await repository.get_schedule(conn, binding.id))


@router.delete("/bindings/{domain}/{dataset}", status_code=204, tags=["bindings"])
async def unbind(domain: str, dataset: str, principal: CurrentPrincipal, pool: DbPool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        binding = await bindings.binding_to_unbind(conn, f"{domain}/{dataset}", principal)
        await repository.delete_binding(conn, binding.id)


@router.put("/bindings/{domain}/{dataset}/schedule", tags=["schedules"])
async def set_schedule(
    domain: str, dataset: str, body: ScheduleSet, principal: CurrentPrincipal, pool: DbPool
) -> dict[str, str]:
    """A DataIngestion schedule: run on a cron expression (five fields, UTC)."""
    next_run_at = scheduler.next_time(body.cron)
    async with pool.acquire() as conn, conn.transaction():
        binding, _ = await bindings.binding_for(conn, f"{domain}/{dataset}", principal)
        await repository.upsert_schedule(conn, binding.id, body.job_type, body.cron,
                                         next_run_at)  # fmt: skip
    return {
        "job_type": body.job_type,
        "cron": body.cron,
        "next_run_at": next_run_at.isoformat(),
    }


@router.delete("/bindings/{domain}/{dataset}/schedule", status_code=204, tags=["schedules"])
async def delete_schedule(
    domain: str, dataset: str, principal: CurrentPrincipal, pool: DbPool
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        binding, _ = await bindings.binding_for(conn, f"{domain}/{dataset}", principal)
        if not await repository.delete_schedule(conn, binding.id):
            raise NotFound(f"dataset {domain}/{dataset} has no schedule")
