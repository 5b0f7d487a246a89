"""A dataset's files: Upload Data, the FileStatus list, Process Files and Permanently Delete
File(s) for pending files."""

from __future__ import annotations

import time
from typing import Annotated

import asyncpg
from fastapi import APIRouter, File, Query, UploadFile

from loadbay_platform.auth import CurrentPrincipal
from loadbay_platform.dependencies import DbPool, ServiceResources
from loadbay_platform.errors import ApiError
from loadbay_platform.s3 import upload_stream
from loadbay_reload import reloads, repository
from loadbay_reload.datasets import Dataset
from loadbay_reload.errors import FilesNotSelectable
from loadbay_reload.landing import landing_key
from loadbay_reload.metrics import FILES_LANDED, RELOADS_REJECTED
from loadbay_reload.routes.views import (
    Domain,
    FileSelection,
    FileView,
    Name,
    ProcessAccepted,
    file_view,
    load_dataset,
)
from loadbay_reload.rows import LandedFile

router = APIRouter(prefix="/datasets/{domain}/{name}", tags=["files"])


@router.post("/files", status_code=201)
async def upload_files(
    domain: Domain,
    name: Name,
    principal: CurrentPrincipal,
    res: ServiceResources,
    files: Annotated[list[UploadFile], File(description="One or more data files")],
) -> list[FileView]:
    """Upload files into the dataset's landing zone; they become pending files."""
    dataset = await load_dataset(res.pool, domain, name, principal)
    lz_bucket = res.settings.s3.lz_bucket
    upload_date = int(time.time())
    uploaded: list[FileView] = []
    for upload in files:
        try:
            key = landing_key(
                domain, name, upload_date, principal.user_id, dataset.file_type,
                upload.filename or "",
            )  # fmt: skip
        except ValueError as exc:
            raise ApiError(str(exc)) from exc
        etag, size = await upload_stream(res.s3, lz_bucket, key, upload)
        async with res.pool.acquire() as conn, conn.transaction():
            await repository.upsert_landed_file(
                conn,
                dataset_id=dataset.id,
                bucket=lz_bucket,
                key=key,
                name=upload.filename or "",
                batch=key.split("/", 2)[2].rsplit("/", 1)[0],
                etag=etag,
                size=size,
                landed_by=principal.user_id,
                landing_source="upload",
            )
            FILES_LANDED.labels("upload").inc()
            row = await repository.file_by_key(conn, lz_bucket, key)
        if row is not None:
            uploaded.append(file_view(row))
    return uploaded


@router.get("/files")
async def list_files(
    domain: Domain,
    name: Name,
    principal: CurrentPrincipal,
    pool: DbPool,
    status: Annotated[str | None, Query(pattern="^(pending|processing|completed)$")] = None,
) -> list[FileView]:
    dataset = await load_dataset(pool, domain, name, principal)
    async with pool.acquire() as conn:
        return [file_view(r) for r in await repository.list_files(conn, dataset.id, status)]


@router.post("/process", status_code=202)
async def process_files(
    domain: Domain,
    name: Name,
    selection: FileSelection,
    principal: CurrentPrincipal,
    res: ServiceResources,
) -> ProcessAccepted:
    """Process Files: load the chosen pending files (all if none named) into the dataset,
    replacing its rows (Reload) or adding theirs (Append). 409 while a run of the dataset is in
    progress."""
    dataset = await load_dataset(res.pool, domain, name, principal)
    async with res.pool.acquire() as conn, conn.transaction():
        files = await _select(conn, dataset, selection)
        try:
            execution_id = await reloads.start_reload(
                conn,
                dataset,
                files,
                trigger="api",
                user=principal,
                batch=None,
                dlz_bucket=res.settings.s3.dlz_bucket,
            )
        except ApiError:
            RELOADS_REJECTED.labels("api").inc()
            raise
    return ProcessAccepted(execution_id=execution_id, files=[f.key for f in files])


@router.post("/files/delete")
async def delete_files(
    domain: Domain,
    name: Name,
    selection: FileSelection,
    principal: CurrentPrincipal,
    res: ServiceResources,
) -> list[FileView]:
    """Permanently delete pending files: removed from the landing zone and the registry."""
    if not selection.file_ids:
        raise ApiError("name the files to delete in file_ids")
    dataset = await load_dataset(res.pool, domain, name, principal)
    async with res.pool.acquire() as conn, conn.transaction():
        files = await _select(conn, dataset, selection)
        for f in files:
            await res.s3.delete_object(Bucket=f.bucket, Key=f.key)
        await repository.delete_files(conn, [f.id for f in files])
    return [file_view(f) for f in files]


async def _select(
    conn: asyncpg.Connection, dataset: Dataset, selection: FileSelection
) -> list[LandedFile]:
    """The selected files, all pending; a clear error for unknown or non-pending ones."""
    if selection.file_ids is None:
        files = await repository.list_files(conn, dataset.id, "pending")
        if not files:
            raise FilesNotSelectable(f"{dataset.domain}/{dataset.name} has no pending files")
        return files
    files = await repository.files_by_ids(conn, dataset.id, selection.file_ids)
    missing = sorted(set(selection.file_ids) - {f.id for f in files})
    if missing:
        raise FilesNotSelectable(f"no files {missing} in {dataset.domain}/{dataset.name}")
    busy = [f"{f.name} ({f.status})" for f in files if f.status != "pending"]
    if busy:
        raise FilesNotSelectable(
            f"only pending files can be processed or deleted; these are not: {', '.join(busy)}"
        )
    return list(files)
