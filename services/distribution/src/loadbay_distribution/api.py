"""The distribution HTTP API: data products, segments, workspaces, datasets, runs, schedules."""

from __future__ import annotations

import json
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, Path, Query
from pydantic import BaseModel, Field

from loadbay_distribution import products, repository, runs, scheduler
from loadbay_distribution.products import (
    CLIENT_ID,
    DATASET_NAME,
    NAME,
    DatasetCreate,
    ProductCreate,
    WorkspaceCreate,
)
from loadbay_platform.auth import CurrentPrincipal
from loadbay_platform.errors import NotFound
from loadbay_platform.service import Resources

# Path parameters are checked before they reach the database: a NUL or a huge value is a 422.
ProductName = Annotated[str, Path(pattern=NAME, description="The data product's name")]
ClientId = Annotated[str, Path(pattern=CLIENT_ID)]
DatasetName = Annotated[str, Path(pattern=DATASET_NAME)]
RunId = Annotated[str, Path(pattern=r"^[0-9A-Za-z-]{1,64}$")]


class ScheduleSet(BaseModel):
    cron: str = Field(max_length=200)


class SegmentCreate(BaseModel):
    name: str = Field(pattern=NAME)


def _product(r: asyncpg.Record, segments: list[str]) -> dict[str, Any]:
    return {
        "id": r["id"], "name": r["name"], "bucket": r["bucket"], "prefix": r["prefix"],
        "owner_id": r["owner_id"], "segments": segments, "created_at": r["created_at"].isoformat(),
    }  # fmt: skip


def _run(r: asyncpg.Record, results: list[asyncpg.Record] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": r["id"], "status": r["status"], "trigger": r["trigger"],
        "triggered_by": r["triggered_by"], "problems": list(r["problems"]),
        "started_at": r["started_at"].isoformat(),
        "finished_at": r["finished_at"].isoformat() if r["finished_at"] else None,
    }  # fmt: skip
    if results is not None:
        view["results"] = [
            {k: x[k] for k in ("client_id", "dataset", "timestamp", "file", "mode", "status",
                               "rows_upserted", "rows_deleted", "reason")}
            for x in results
        ]  # fmt: skip
    return view


def add_routes(app: FastAPI, res: Resources) -> None:
    pool = res.pool

    @app.post("/data-products", status_code=201, tags=["data products"])
    async def create_product(body: ProductCreate, principal: CurrentPrincipal) -> dict[str, Any]:
        async with pool.acquire() as conn, conn.transaction():
            product = await products.create_product(conn, body, principal)
            return _product(product, await repository.list_segments(conn, product["id"]))

    @app.get("/data-products", tags=["data products"])
    async def list_products(principal: CurrentPrincipal) -> list[dict[str, Any]]:
        async with pool.acquire() as conn:
            return [
                _product(p, await repository.list_segments(conn, p["id"]))
                for p in await repository.list_products(conn, principal.user_id)
            ]

    @app.get("/data-products/{name}", tags=["data products"])
    async def show_product(name: ProductName, principal: CurrentPrincipal) -> dict[str, Any]:
        async with pool.acquire() as conn:
            product = await products.product_for(conn, name, principal)
            view = _product(product, await repository.list_segments(conn, product["id"]))
            schedule = await repository.get_schedule(conn, product["id"])
            view["schedule"] = (
                {"cron": schedule["cron"], "next_run_at": schedule["next_run_at"].isoformat()}
                if schedule else None
            )  # fmt: skip
            return view

    @app.delete("/data-products/{name}", status_code=204, tags=["data products"])
    async def delete_product(name: ProductName, principal: CurrentPrincipal) -> None:
        async with pool.acquire() as conn, conn.transaction():
            product = await products.product_for(conn, name, principal)
            await repository.delete_product(conn, product["id"])

    @app.post("/data-products/{name}/segments", status_code=201, tags=["data products"])
    async def add_segment(
        name: ProductName, body: SegmentCreate, principal: CurrentPrincipal
    ) -> None:
        async with pool.acquire() as conn, conn.transaction():
            product = await products.product_for(conn, name, principal)
            await products.add_segment(conn, product, body.name)

    @app.post("/data-products/{name}/workspaces", status_code=201, tags=["workspaces"])
    async def add_workspace(
        name: ProductName, body: WorkspaceCreate, principal: CurrentPrincipal
    ) -> dict[str, str]:
        async with pool.acquire() as conn, conn.transaction():
            product = await products.product_for(conn, name, principal)
            schema = await products.add_workspace(conn, product, body)
        return {"client_id": body.client_id, "schema": schema}

    @app.get("/data-products/{name}/workspaces", tags=["workspaces"])
    async def list_workspaces(
        name: ProductName, principal: CurrentPrincipal
    ) -> list[dict[str, Any]]:
        async with pool.acquire() as conn:
            product = await products.product_for(conn, name, principal)
            rows = await repository.list_workspaces(conn, product["id"])
        return [
            {
                "client_id": w["client_id"], "segment": w["segment"], "schema": w["schema_name"],
                "created_at": w["created_at"].isoformat(),
                "datasets": {
                    d: {**s, "needs_recovery": s["failure_streak"] >= 3}
                    for d, s in json.loads(w["states"]).items()
                },
            }
            for w in rows
        ]  # fmt: skip

    @app.delete("/data-products/{name}/workspaces/{client_id}", status_code=204,
                tags=["workspaces"])  # fmt: skip
    async def delete_workspace(
        name: ProductName, client_id: ClientId, principal: CurrentPrincipal
    ) -> None:
        async with pool.acquire() as conn, conn.transaction():
            product = await products.product_for(conn, name, principal)
            if not await repository.delete_workspace(conn, product["id"], client_id):
                raise NotFound(f"no workspace {client_id!r} in {name}")

    @app.post("/data-products/{name}/datasets", status_code=201, tags=["datasets"])
    async def add_dataset(
        name: ProductName, body: DatasetCreate, principal: CurrentPrincipal
    ) -> None:
        async with pool.acquire() as conn, conn.transaction():
            product = await products.product_for(conn, name, principal)
            await products.add_dataset(conn, product, body)

    @app.get("/data-products/{name}/datasets", tags=["datasets"])
    async def list_datasets(name: ProductName, principal: CurrentPrincipal) -> list[dict[str, Any]]:
        async with pool.acquire() as conn:
            product = await products.product_for(conn, name, principal)
            rows = await repository.list_datasets(conn, product["id"])
        return [{"name": d["name"], "segment": d["segment"], "grain": list(d["grain"]),
                 "columns": json.loads(d["columns"])} for d in rows]  # fmt: skip

    @app.delete("/data-products/{name}/datasets/{dataset}", status_code=204, tags=["datasets"])
    async def delete_dataset(
        name: ProductName, dataset: DatasetName, principal: CurrentPrincipal
    ) -> None:
        async with pool.acquire() as conn, conn.transaction():
            product = await products.product_for(conn, name, principal)
            if not await repository.delete_dataset(conn, product["id"], dataset):
                raise NotFound(f"no dataset {dataset!r} in {name}")

    @app.post("/data-products/{name}/runs", status_code=202, tags=["runs"])
    async def start_run(name: ProductName, principal: CurrentPrincipal) -> dict[str, str]:
        """Start a run now; 409 while one of this data product runs."""
        async with pool.acquire() as conn, conn.transaction():
            product = await products.product_for(conn, name, principal)
            run_id = await runs.start_run(conn, res.s3, product, "api", principal.user_id)
        return {"run_id": run_id}

    @app.get("/data-products/{name}/runs", tags=["runs"])
    async def list_runs(
        name: ProductName,
        principal: CurrentPrincipal,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[dict[str, Any]]:
        async with pool.acquire() as conn:
            product = await products.product_for(conn, name, principal)
            return [_run(r) for r in await repository.list_runs(conn, product["id"], limit)]

    @app.get("/runs/{run_id}", tags=["runs"])
    async def show_run(run_id: RunId, principal: CurrentPrincipal) -> dict[str, Any]:
        """A run with its per-workspace, per-dataset results."""
        async with pool.acquire() as conn:
            run = await repository.get_run(conn, run_id)
            product = await repository.product_by_id(conn, run["data_product_id"]) if run else None
            if run is None or product is None or product["owner_id"] != principal.user_id:
                raise NotFound(f"no run {run_id}")
            return _run(run, await repository.run_results(conn, run_id))

    @app.put("/data-products/{name}/schedule", tags=["runs"])
    async def set_schedule(
        name: ProductName, body: ScheduleSet, principal: CurrentPrincipal
    ) -> dict[str, str]:
        """Run on a cron schedule (five fields, UTC)."""
        next_run_at = scheduler.next_time(body.cron)
        async with pool.acquire() as conn, conn.transaction():
            product = await products.product_for(conn, name, principal)
            await repository.upsert_schedule(conn, product["id"], body.cron, next_run_at)
        return {"cron": body.cron, "next_run_at": next_run_at.isoformat()}

    @app.delete("/data-products/{name}/schedule", status_code=204, tags=["runs"])
    async def delete_schedule(name: ProductName, principal: CurrentPrincipal) -> None:
        async with pool.acquire() as conn, conn.transaction():
            product = await products.product_for(conn, name, principal)
            await repository.delete_schedule(conn, product["id"])
