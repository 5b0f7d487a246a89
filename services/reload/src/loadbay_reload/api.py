"""The reload HTTP API: datasets, uploads, pending files, Process Files, executions."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, File, Path, Query, UploadFile
from pydantic import BaseModel, Field

from loadbay_contracts.datasets import IDENTIFIER
from loadbay_platform.auth import CurrentPrincipal, Principal
from loadbay_platform.errors import ApiError
from loadbay_platform.s3 import upload_stream
from loadbay_platform.service import Resources
from loadbay_reload import datasets, reloads, repository
from loadbay_reload.datasets import Dataset, DatasetCreate
from loadbay_reload.errors import ExecutionNotFound, FilesNotSelectable
from loadbay_reload.landing import landing_key
from loadbay_reload.metrics import FILES_LANDED, RELOADS_REJECTED

# Path parameters are checked before they reach the database: a NUL or a 10 MB name is a 422.
Domain = Annotated[str, Path(pattern=IDENTIFIER.pattern, description="The dataset's domain")]
Name = Annotated[str, Path(pattern=IDENTIFIER.pattern, description="The dataset's name")]
ExecutionId = Annotated[str, Path(pattern=r"^[0-9A-Za-z-]{1,64}$")]
FileId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class FileView(BaseModel):
    id: int
    key: str
    name: str
    batch: str
    size: int
    etag: str
    status: str
    error: str | None
    landed_by: str
    landing_source: str
    execution_id: str | None
    landed_at: datetime
    updated_at: datetime


class ExecutionView(BaseModel):
    id: str
    dataset: str
    status: str
    trigger: str
    triggered_by: str
    batch: str | None
    reason: str | None
    error: dict[str, Any] | None
    files: list[str]
    file_count: int
    rows: int
    bytes: int
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None


class FileSelection(BaseModel):
    file_ids: list[FileId] | None = Field(
        default=None,
        max_length=10_000,
        description="Pending files to act on; omit to process all pending files",
    )


class ProcessAccepted(BaseModel):
    execution_id: str
    files: list[str]


def file_view(r: asyncpg.Record) -> FileView:
    return FileView(**{k: r[k] for k in FileView.model_fields})


def execution_view(r: asyncpg.Record) -> ExecutionView:
    finished = r["finished_at"]
    return ExecutionView(
        id=r["id"],
        dataset=f"{r['domain']}/{r['dataset_name']}",
        status=r["status"],
        trigger=r["trigger"],
        triggered_by=r["triggered_by"],
        batch=r["batch"],
        reason=r["reason"],
        error=json.loads(r["error"]) if r["error"] else None,
        files=list(r["files"]),
        file_count=r["file_count"],
        rows=r["rows"],
        bytes=r["bytes"],
        started_at=r["started_at"],
        finished_at=finished,
        duration_s=(finished - r["started_at"]).total_seconds() if finished else None,
    )


def add_routes(app: FastAPI, res: Resources) -> None:
    pool = res.pool
    s3_settings = res.settings.s3

    async def load(domain: str, name: str, principal: Principal) -> Dataset:
        async with pool.acquire() as conn:
            return await datasets.get_dataset(conn, domain, name, principal)

    @app.post("/datasets", status_code=201, tags=["datasets"])
    async def create_dataset(body: DatasetCreate, principal: CurrentPrincipal) -> Dataset:
        async with pool.acquire() as conn, conn.transaction():
            return await datasets.create_dataset(conn, body, principal)

    @app.get("/datasets", tags=["datasets"])
    async def list_datasets(principal: CurrentPrincipal) -> list[Dataset]:
        async with pool.acquire() as conn:
            return await datasets.list_datasets(conn, principal)

    @app.get("/datasets/{domain}/{name}", tags=["datasets"])
    async def show_dataset(domain: Domain, name: Name, principal: CurrentPrincipal) -> Dataset:
        return await load(domain, name, principal)

    @app.delete("/datasets/{domain}/{name}", status_code=204, tags=["datasets"])
    async def delete_dataset(domain: Domain, name: Name, principal: CurrentPrincipal) -> None:
        async with pool.acquire() as conn, conn.transaction():
            dataset = await datasets.get_dataset(conn, domain, name, principal)
            await datasets.delete_dataset(conn, dataset, principal)

    @app.post("/datasets/{domain}/{name}/files", status_code=201, tags=["files"])
    async def upload_files(
        domain: Domain,
        name: Name,
        principal: CurrentPrincipal,
        files: Annotated[list[UploadFile], File(description="One or more data files")],
    ) -> list[FileView]:
        """Upload files into the dataset's landing zone; they become pending files."""
        dataset = await load(domain, name, principal)
        upload_date = int(time.time())
        uploaded: list[FileView] = []
        for upload in files:
            try:
                key = landing_key(
                    domain,
                    name,
                    upload_date,
                    principal.user_id,
                    dataset.file_type,
                    upload.filename or "",
                )
            except ValueError as exc:
                raise ApiError(str(exc)) from exc
            etag, size = await upload_stream(res.s3, s3_settings.lz_bucket, key, upload)
            async with pool.acquire() as conn, conn.transaction():
                await repository.upsert_landed_file(
                    conn,
                    dataset_id=dataset.id,
                    bucket=s3_settings.lz_bucket,
                    key=key,
                    name=upload.filename or "",
                    batch=key.split("/", 2)[2].rsplit("/", 1)[0],
                    etag=etag,
                    size=size,
                    landed_by=principal.user_id,
                    landing_source="upload",
                )
                FILES_LANDED.labels("upload").inc()
                row = await repository.file_by_key(conn, s3_settings.lz_bucket, key)
            if row is not None:
                uploaded.append(file_view(row))
        return uploaded

    @app.get("/datasets/{domain}/{name}/files", tags=["files"])
    async def list_files(
        domain: Domain,
        name: Name,
        principal: CurrentPrincipal,
        status: Annotated[str | None, Query(pattern="^(pending|processing|completed)$")] = None,
    ) -> list[FileView]:
        dataset = await load(domain, name, principal)
        async with pool.acquire() as conn:
            return [file_view(r) for r in await repository.list_files(conn, dataset.id, status)]

    @app.post("/datasets/{domain}/{name}/process", status_code=202, tags=["files"])
    async def process_files(
        domain: Domain, name: Name, selection: FileSelection, principal: CurrentPrincipal
    ) -> ProcessAccepted:
        """Process Files: reload the dataset from the chosen pending files (all if none named).
        409 while a reload of the dataset runs."""
        dataset = await load(domain, name, principal)
        async with pool.acquire() as conn, conn.transaction():
            files = await _select(conn, dataset, selection)
            try:
                execution_id = await reloads.start_reload(
                    conn,
                    dataset,
                    files,
                    trigger="api",
                    user=principal,
                    batch=None,
                    dlz_bucket=s3_settings.dlz_bucket,
                )
            except ApiError:
                RELOADS_REJECTED.labels("api").inc()
                raise
        return ProcessAccepted(execution_id=execution_id, files=[f["key"] for f in files])

    @app.post("/datasets/{domain}/{name}/files/delete", tags=["files"])
    async def delete_files(
        domain: Domain, name: Name, selection: FileSelection, principal: CurrentPrincipal
    ) -> list[FileView]:
        """Permanently delete pending files: removed from the landing zone and the registry."""
        if not selection.file_ids:
            raise ApiError("name the files to delete in file_ids")
        dataset = await load(domain, name, principal)
        async with pool.acquire() as conn, conn.transaction():
            files = await _select(conn, dataset, selection)
            for f in files:
                await res.s3.delete_object(Bucket=f["bucket"], Key=f["key"])
            await repository.delete_files(conn, [f["id"] for f in files])
        return [file_view(f) for f in files]

    @app.get("/datasets/{domain}/{name}/executions", tags=["executions"])
    async def list_executions(
        domain: Domain,
        name: Name,
        principal: CurrentPrincipal,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[ExecutionView]:
        dataset = await load(domain, name, principal)
        async with pool.acquire() as conn:
            rows = await repository.list_executions(conn, dataset.id, limit)
        return [execution_view(r) for r in rows]

    @app.get("/executions/{execution_id}", tags=["executions"])
    async def show_execution(
        execution_id: ExecutionId, principal: CurrentPrincipal
    ) -> ExecutionView:
        async with pool.acquire() as conn:
            row = await repository.get_execution(conn, execution_id)
            if row is not None:
                await datasets.get_dataset(conn, row["domain"], row["dataset_name"], principal)
        if row is None:
            raise ExecutionNotFound(execution_id)
        return execution_view(row)


async def _select(
    conn: asyncpg.Connection, dataset: Dataset, selection: FileSelection
) -> list[asyncpg.Record]:
    """The selected files, all pending; a clear error for unknown or non-pending ones."""
    if selection.file_ids is None:
        files = await repository.list_files(conn, dataset.id, "pending")
        if not files:
            raise FilesNotSelectable(f"{dataset.domain}/{dataset.name} has no pending files")
        return files
    files = await repository.files_by_ids(conn, dataset.id, selection.file_ids)
    missing = sorted(set(selection.file_ids) - {f["id"] for f in files})
    if missing:
        raise FilesNotSelectable(f"no files {missing} in {dataset.domain}/{dataset.name}")
    busy = [f"{f['name']} ({f['status']})" for f in files if f["status"] != "pending"]
    if busy:
        raise FilesNotSelectable(
            f"only pending files can be processed or deleted; these are not: {', '.join(busy)}"
        )
    return list(files)
