"""The ingestion HTTP API: connections, bindings, schedules and runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

from loadbay_ingestion import bindings, connections, policies, regions, repository, runs, scheduler
from loadbay_ingestion.bindings import BindingCreate, ScheduleSet
from loadbay_ingestion.connections import ConnectionCreate, ConnectionUpdate, VersionChange
from loadbay_ingestion.crypto import SecretBox
from loadbay_ingestion.endpoints import EndpointPolicy
from loadbay_ingestion.metrics import CONNECTION_TESTS
from loadbay_ingestion.remote import check_remote_endpoint, remote_client, test_access
from loadbay_ingestion.settings import IngestionSettings
from loadbay_platform.auth import CurrentPrincipal
from loadbay_platform.errors import Conflict, NotFound
from loadbay_platform.service import Resources


def _binding(b: asyncpg.Record, connection: str, schedule: asyncpg.Record | None) -> dict[str, Any]:
    return {
        "dataset": b["dataset"], "connection": connection, "dataset_type": b["dataset_type"],
        "file_type": b["file_type"], "directory_path": b["directory_path"],
        "user_id": b["user_id"], "created_at": b["created_at"].isoformat(),
        "enabled": b["disabled_at"] is None, "disabled_reason": b["disabled_reason"],
        "schedule": (
            {"job_type": schedule["job_type"], "cron": schedule["cron"],
             "next_run_at": schedule["next_run_at"].isoformat()}
            if schedule else None
        ),
    }  # fmt: skip


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _run(r: asyncpg.Record, objects: list[asyncpg.Record] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": r["id"], "status": r["status"], "trigger": r["trigger"],
        "triggered_by": r["triggered_by"], "version": r["version"], "skip_lz": r["skip_lz"],
        "upload_date": r["upload_date"], "reason": r["reason"],
        "copied_count": r["copied_count"], "skipped_count": r["skipped_count"],
        "failed_count": r["failed_count"], "bytes_copied": r["bytes_copied"],
        "queued_at": _iso(r["queued_at"]), "started_at": _iso(r["started_at"]),
        "finished_at": _iso(r["finished_at"]),
    }  # fmt: skip
    if objects is not None:
        landed = r["status"] != "failed"
        view["copied"] = [
            {"key": o["source_key"], "size": o["size"], "bucket": o["dest_bucket"],
             "dest_key": o["dest_key"]}
            for o in objects if o["status"] == "copied" and landed
        ]  # fmt: skip
        for status in ("skipped", "failed"):
            view[status] = [
                {"key": o["source_key"], "size": o["size"], "storage_class": o["storage_class"],
                 "reason": o["reason"]}
                for o in objects if o["status"] == status
            ]  # fmt: skip
    return view


def add_routes(
    app: FastAPI, res: Resources, settings: IngestionSettings, box: SecretBox,
    policy: EndpointPolicy, wake: Callable[[], None],
) -> None:  # fmt: skip
    pool = res.pool

    # -- connections ---------------------------------------------------------------------------

    @app.post("/connections", status_code=201, tags=["connections"])
    async def create_connection(
        body: ConnectionCreate, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        """Create an S3 connection. Access keys are stored encrypted and never shown again."""
        async with pool.acquire() as conn, conn.transaction():
            found = await connections.create_connection(conn, box, body, principal, policy)
            return await connections.view(conn, found)

    @app.get("/connections", tags=["connections"])
    async def list_connections(principal: CurrentPrincipal) -> list[dict[str, Any]]:
        async with pool.acquire() as conn:
            return [
                await connections.view(conn, c)
                for c in await repository.list_connections(conn, principal.user_id)
            ]

    @app.get("/connections/{name}", tags=["connections"])
    async def show_connection(name: str, principal: CurrentPrincipal) -> dict[str, Any]:
        async with pool.acquire() as conn:
            found = await connections.connection_for(conn, name, principal)
            view = await connections.view(conn, found)
            view["datasets"] = [
                b["dataset"] for b in await repository.list_bindings(conn, found["id"])
            ]
            return view

    @app.patch("/connections/{name}", tags=["connections"])
    async def update_connection(
        name: str, body: ConnectionUpdate, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        async with pool.acquire() as conn, conn.transaction():
            current = await connections.owned_connection(conn, name, principal)
            await connections.update_connection(conn, box, current, body, principal, policy)
            found = await repository.connection_by_id(conn, current["id"])
            assert found is not None
            return await connections.view(conn, found)

    @app.delete("/connections/{name}", status_code=204, tags=["connections"])
    async def delete_connection(name: str, principal: CurrentPrincipal) -> None:
        async with pool.acquire() as conn, conn.transaction():
            current = await connections.owned_connection(conn, name, principal)
            await connections.delete_connection(conn, current)

    @app.post("/connections/{name}/test", tags=["connections"])
    async def test_connection(name: str, principal: CurrentPrincipal) -> dict[str, Any]:
        """Whether loadbay can list the bucket and read from it; if not, why."""
        async with pool.acquire() as conn:
            found = await connections.connection_for(conn, name, principal)
        problem = regions.opt_in_problem(found["region"], settings.enabled_opt_in_regions)
        if problem is not None:
            result: dict[str, Any] = {
                "bucket": found["bucket"], "ok": False, "can_list": False, "can_read": False,
                "reason": problem,
            }  # fmt: skip
        else:
            await check_remote_endpoint(found, policy)  # 422 before any request is sent
            try:
                client = remote_client(found, settings, box, policy)
            except ValueError as exc:  # the stored keys cannot be decrypted
                raise Conflict(str(exc)) from exc
            async with client as remote:
                result = await test_access(remote, found["bucket"])
        CONNECTION_TESTS.labels("ok" if result["ok"] else "failed").inc()
        return result

    @app.post("/connections/{name}/upgrade", tags=["connections"])
    async def upgrade(
        name: str, body: VersionChange, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        """Upgrade to the next version (1.6 -> 1.7 -> 1.8)."""
        async with pool.acquire() as conn, conn.transaction():
            current = await connections.owned_connection(conn, name, principal)
            await connections.upgrade(conn, current, body.version, principal)
            found = await repository.connection_by_id(conn, current["id"])
            assert found is not None
            return await connections.view(conn, found)

    @app.post("/connections/{name}/downgrade", tags=["connections"])
    async def downgrade(
        name: str, body: VersionChange, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        """Downgrade back to a version the connection was upgraded from."""
        async with pool.acquire() as conn, conn.transaction():
            current = await connections.owned_connection(conn, name, principal)
            await connections.downgrade(conn, current, body.version, principal)
            found = await repository.connection_by_id(conn, current["id"])
            assert found is not None
            return await connections.view(conn, found)

    @app.get("/connections/{name}/bucket-policy", tags=["connections"])
    async def bucket_policy(name: str, principal: CurrentPrincipal) -> JSONResponse:
        """The bucket policy to attach to the remote bucket (bucket_policy connections)."""
        async with pool.acquire() as conn:
            found = await connections.connection_for(conn, name, principal)
        if found["access_type"] != "bucket_policy":
            raise NotFound(f"connection {name!r} uses access keys: it has no bucket policy")
        document = policies.bucket_policy(found["bucket"], found["region"], settings.principal_arn)
        return _download(document, f"{name}-bucket-policy.json")

    @app.get("/connections/{name}/kms-key-policy", tags=["connections"])
    async def kms_key_policy(name: str, principal: CurrentPrincipal) -> JSONResponse:
        """The KMS key policy statement for a KMS-encrypted bucket (bucket_policy connections)."""
        async with pool.acquire() as conn:
            found = await connections.connection_for(conn, name, principal)
        if found["access_type"] != "bucket_policy" or not found["kms_key_arn"]:
            raise NotFound(
                f"connection {name!r} has no KMS key policy: it applies to bucket_policy"
                " connections of a KMS-encrypted bucket (kms_key_arn)"
            )
        document = policies.kms_key_policy(found["region"], settings.principal_arn)
        return _download(document, f"{name}-kms-key-policy.json")

    # -- bindings and schedules ----------------------------------------------------------------

    @app.post("/connections/{name}/bindings", status_code=201, tags=["bindings"])
    async def bind(name: str, body: BindingCreate, principal: CurrentPrincipal) -> dict[str, Any]:
        """Bind a dataset to this connection's bucket: objects under `directory_path` with
        extension `file_type` are ingested into it."""
        async with pool.acquire() as conn, conn.transaction():
            found = await connections.connection_for(conn, name, principal)
            binding = await bindings.create_binding(conn, found, body, principal)
            return _binding(binding, name, None)

    @app.get("/connections/{name}/bindings", tags=["bindings"])
    async def list_bindings(name: str, principal: CurrentPrincipal) -> list[dict[str, Any]]:
        async with pool.acquire() as conn:
            found = await connections.connection_for(conn, name, principal)
            return [
                _binding(b, name, await repository.get_schedule(conn, b["id"]))
                for b in await repository.list_bindings(conn, found["id"])
            ]

    @app.get("/bindings/{domain}/{dataset}", tags=["bindings"])
    async def show_binding(
        domain: str, dataset: str, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        async with pool.acquire() as conn:
            binding, found = await bindings.binding_for(conn, f"{domain}/{dataset}", principal)
            return _binding(
                binding, found["name"], await repository.get_schedule(conn, binding["id"])
            )

    @app.delete("/bindings/{domain}/{dataset}", status_code=204, tags=["bindings"])
    async def unbind(domain: str, dataset: str, principal: CurrentPrincipal) -> None:
        async with pool.acquire() as conn, conn.transaction():
            binding = await bindings.binding_to_unbind(conn, f"{domain}/{dataset}", principal)
            await repository.delete_binding(conn, binding["id"])

    @app.put("/bindings/{domain}/{dataset}/schedule", tags=["schedules"])
    async def set_schedule(
        domain: str, dataset: str, body: ScheduleSet, principal: CurrentPrincipal
    ) -> dict[str, str]:
        """A DataIngestion schedule: run on a cron expression (five fields, UTC)."""
        next_run_at = scheduler.next_time(body.cron)
        async with pool.acquire() as conn, conn.transaction():
            binding, _ = await bindings.binding_for(conn, f"{domain}/{dataset}", principal)
            await repository.upsert_schedule(conn, binding["id"], body.job_type, body.cron,
                                             next_run_at)  # fmt: skip
        return {
            "job_type": body.job_type,
            "cron": body.cron,
            "next_run_at": next_run_at.isoformat(),
        }

    @app.delete("/bindings/{domain}/{dataset}/schedule", status_code=204, tags=["schedules"])
    async def delete_schedule(domain: str, dataset: str, principal: CurrentPrincipal) -> None:
        async with pool.acquire() as conn, conn.transaction():
            binding, _ = await bindings.binding_for(conn, f"{domain}/{dataset}", principal)
            if not await repository.delete_schedule(conn, binding["id"]):
                raise NotFound(f"dataset {domain}/{dataset} has no schedule")

    # -- runs ----------------------------------------------------------------------------------

    @app.post("/bindings/{domain}/{dataset}/runs", status_code=202, tags=["runs"])
    async def run_now(domain: str, dataset: str, principal: CurrentPrincipal) -> dict[str, str]:
        """Run now. The run is queued and starts when a slot is free (throttling); 409 while a
        run of this dataset is queued or running."""
        async with pool.acquire() as conn, conn.transaction():
            binding, _ = await bindings.binding_for(conn, f"{domain}/{dataset}", principal)
            run_id = await runs.queue_run(conn, binding, "api", principal.user_id)
        wake()
        return {"run_id": run_id, "status": "queued"}

    @app.get("/bindings/{domain}/{dataset}/runs", tags=["runs"])
    async def list_runs(
        domain: str, dataset: str, principal: CurrentPrincipal,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[dict[str, Any]]:  # fmt: skip
        async with pool.acquire() as conn:
            binding, _ = await bindings.binding_for(conn, f"{domain}/{dataset}", principal)
            return [_run(r) for r in await repository.list_runs(conn, binding["id"], limit)]

    @app.get("/runs/{run_id}", tags=["runs"])
    async def show_run(run_id: str, principal: CurrentPrincipal) -> dict[str, Any]:
        """A run with its copied, skipped and failed objects."""
        async with pool.acquire() as conn:
            run = await repository.get_run(conn, run_id)
            binding = await repository.binding_by_id(conn, run["binding_id"]) if run else None
            if run is None or binding is None:
                raise NotFound(f"no run {run_id}")
            await bindings.binding_for(conn, binding["dataset"], principal)
            view = _run(run, await repository.run_objects(conn, run_id))
            view["dataset"] = binding["dataset"]
            return view


def _download(document: dict[str, Any], filename: str) -> JSONResponse:
    return JSONResponse(
        document, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
