"""The reload flow: landed files become pending, `_SUCCESS` or Process Files start a reload,
and the loader's outcome finishes it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

import asyncpg
from botocore.exceptions import ClientError

from loadbay_contracts import (
    FileLanded,
    FileRef,
    ReloadFinished,
    ReloadLoaded,
    ReloadRejected,
    ReloadRequested,
)
from loadbay_platform import outbox
from loadbay_platform.auth import Principal
from loadbay_platform.errors import TerminalError
from loadbay_platform.reasons import truncate
from loadbay_platform.s3 import ObjectStore
from loadbay_reload import repository
from loadbay_reload.datasets import Dataset, find_dataset
from loadbay_reload.errors import FilesNotSelectable, ReloadRunning
from loadbay_reload.landing import (
    SUCCESS_MARKER,
    LandingPath,
    MalformedLandingPath,
    parse_landing_path,
)
from loadbay_reload.metrics import (
    FILES_LANDED,
    RELOADS_FINISHED,
    RELOADS_REJECTED,
    RELOADS_STARTED,
)
from loadbay_reload.rejects import Reject
from loadbay_reload.rows import LandedFile

SERVICE = "reload"
log = logging.getLogger(__name__)


async def _object_exists(s3: ObjectStore, bucket: str, key: str) -> bool:
    try:
        await s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


async def register_landing(
    conn: asyncpg.Connection,
    s3: ObjectStore,
    lz_bucket: str,
    dlz_bucket: str,
    landed: FileLanded,
    reject: Reject,
) -> None:
    """Turn one landed object into a pending file, or start its batch's reload if it is the
    `_SUCCESS` marker. Anything that matches no dataset is a TerminalError (dead-lettered);
    an odd key found in a `_SUCCESS` marker's batch folder is rejected on its own."""
    if landed.bucket not in (lz_bucket, dlz_bucket):
        # Other buckets are other services' business (a data product's source location).
        log.debug("ignoring s3://%s/%s: not in the landing zone", landed.bucket, landed.key)
        return
    path = parse_landing_path(landed.key)
    dataset = await find_dataset(conn, path.domain, path.dataset)
    if dataset is not None and landed.bucket == dlz_bucket and dataset.dataset_type != "append":
        raise TerminalError(
            f"s3://{landed.bucket}/{landed.key}: files skip the landing zone (skip-LZ) only"
            f" into Append datasets; {dataset.domain}/{dataset.name} is a Reload dataset"
        )
    if dataset is None:
        raise TerminalError(
            f"s3://{landed.bucket}/{landed.key}: no dataset {path.domain}/{path.dataset}"
        )
    if path.file_type != dataset.file_type:
        raise TerminalError(
            f"s3://{landed.bucket}/{landed.key}: file type folder {path.file_type!r} does not"
            f" match the dataset's file type {dataset.file_type!r}"
        )
    if not dataset.may_use(path.user_id):
        raise TerminalError(
            f"s3://{landed.bucket}/{landed.key}: user {path.user_id!r} is not authorized on"
            f" {dataset.domain}/{dataset.name}"
        )
    if path.is_success_marker:
        await _on_success_marker(conn, s3, dlz_bucket, dataset, path, landed, reject)
        return
    if not await _object_exists(s3, landed.bucket, landed.key):
        # Deleted since it landed (Permanently Delete File(s) before the watcher's or a
        # producer's late event): registering it again would make a pending file of nothing.
        log.info("ignoring s3://%s/%s: the object is gone", landed.bucket, landed.key)
        return
    file_id = await repository.upsert_landed_file(
        conn,
        dataset_id=dataset.id,
        bucket=landed.bucket,
        key=landed.key,
        name=path.name,
        batch=path.batch,
        etag=landed.etag,
        size=landed.size,
        landed_by=path.user_id,
        landing_source=landed.source,
    )
    if file_id is not None:
        FILES_LANDED.labels(landed.source).inc()


async def _on_success_marker(
    conn: asyncpg.Connection,
    s3: ObjectStore,
    dlz_bucket: str,
    dataset: Dataset,
    path: LandingPath,
    marker: FileLanded,
    reject: Reject,
) -> None:
    bucket = marker.bucket
    # The batch's own files may not all have been announced yet (an upstream producer may send
    # only the marker, or notifications may lag): list the folder and register what is missing.
    await _register_unannounced(conn, s3, bucket, dataset, path, reject)
    files = await repository.pending_files_in_batch(conn, dataset.id, path.batch)
    if not files:
        log.warning("_SUCCESS in %s found no pending files; nothing to reload", path.batch_prefix)
        return
    user = Principal(path.user_id, dataset.email_of(path.user_id))
    running = await repository.running_execution_id(conn, dataset.id)
    if running is not None:
        if not await repository.record_rejected_marker(conn, running, marker.key, marker.etag):
            log.info("%s announced again while %s runs: told once already", marker.key, running)
            return
        RELOADS_REJECTED.labels("success-file").inc()
        await outbox.enqueue(
            conn,
            ReloadRejected(
                dataset_id=dataset.id,
                domain=dataset.domain,
                dataset_name=dataset.name,
                batch=path.batch,
                running_execution_id=running,
                reason=ReloadRunning(dataset.domain, dataset.name, running).args[0],
                recipients=dataset.recipients(user.user_id),
            ),
            service=SERVICE,
        )
        return
    await start_reload(
        conn,
        dataset,
        files,
        trigger="success-file",
        user=user,
        batch=path.batch,
        dlz_bucket=dlz_bucket,
    )


async def _register_unannounced(
    conn: asyncpg.Connection,
    s3: ObjectStore,
    bucket: str,
    dataset: Dataset,
    path: LandingPath,
    reject: Reject,
) -> None:
    known = await repository.keys_in_batch(conn, dataset.id, path.batch)
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=path.batch_prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key in known or key == path.batch_prefix + SUCCESS_MARKER or key.endswith("/"):
                continue
            try:
                landed = parse_landing_path(key)
            except MalformedLandingPath as exc:
                # Reported on its own; the batch loads its good files.
                await reject(
                    FileLanded(
                        bucket=bucket,
                        key=key,
                        size=obj["Size"],
                        etag=obj["ETag"].strip('"'),
                        source="watcher",
                    ),
                    str(exc),
                )
                continue
            await repository.upsert_landed_file(
                conn,
                dataset_id=dataset.id,
                bucket=bucket,
                key=key,
                name=landed.name,
                batch=landed.batch,
                etag=obj["ETag"].strip('"'),
                size=obj["Size"],
                landed_by=landed.user_id,
                landing_source="watcher",
            )


async def start_reload(
    conn: asyncpg.Connection,
    dataset: Dataset,
    files: Sequence[LandedFile],
    *,
    trigger: str,
    user: Principal,
    batch: str | None,
    dlz_bucket: str,
) -> str:
    """Start a reload of `files` (pending files of `dataset`); ReloadRunning if one runs."""
    await repository.lock_dataset(conn, dataset.id)
    running = await repository.running_execution_id(conn, dataset.id)
    if running is not None:
        raise ReloadRunning(dataset.domain, dataset.name, running)
    not_pending = [f.name for f in files if f.status != "pending"]
    if not_pending:
        raise FilesNotSelectable(f"only pending files can be processed; not pending: {not_pending}")
    execution_id = str(uuid.uuid4())
    file_ids = [f.id for f in files]
    await repository.insert_execution(
        conn,
        execution_id=execution_id,
        dataset_id=dataset.id,
        trigger=trigger,
        triggered_by=user.user_id,
        triggered_by_email=user.email,
        batch=batch,
        file_ids=file_ids,
    )
    await repository.mark_processing(conn, file_ids, execution_id)
    await outbox.enqueue(
        conn,
        ReloadRequested(
            execution_id=execution_id,
            dataset=dataset.spec(),
            files=tuple(
                FileRef(bucket=f.bucket, key=f.key, etag=f.etag, size=f.size) for f in files
            ),
            dlz_bucket=dlz_bucket,
            dlz_prefix=f"{dataset.domain}/{dataset.name}/",
            triggered_by=user.user_id,
            trigger="api" if trigger == "api" else "success-file",
            mode="append" if dataset.dataset_type == "append" else "replace",
        ),
        service=SERVICE,
        subject=f"{dataset.domain}/{dataset.name}",
    )
    RELOADS_STARTED.labels(trigger).inc()
    return execution_id


async def finish_reload(conn: asyncpg.Connection, completed: ReloadLoaded) -> None:
    """Record the loader's outcome on the execution and its files, and announce it."""
    execution = await repository.lock_execution(conn, completed.request_id)
    if execution is None or execution.status != "running":
        log.info(
            "reload.loaded for execution %s that is not running; ignored", completed.request_id
        )
        return
    dataset = await find_dataset(conn, execution.domain, execution.dataset_name)
    if dataset is None:
        return
    reason: str | None = None
    if completed.status == "succeeded":
        await repository.mark_completed(conn, completed.request_id)
    else:
        error = completed.error
        # Stored, listed and emailed: bounded whatever the loader sent.
        reason = truncate(error.message) if error else "the load failed for an unknown reason"
        failed_key = error.file if error else None
        await repository.return_to_pending(
            conn,
            completed.request_id,
            failed_key=failed_key,
            file_error=reason,
            # No file at fault (the table is): every file carries the reason.
            others_error=(
                f"not loaded: the reload failed on {failed_key}" if failed_key else reason
            ),
        )
    await repository.finish_execution(
        conn,
        completed.request_id,
        status=completed.status,
        reason=reason,
        error=({**completed.error.model_dump(), "message": reason} if completed.error else None),
        rows=completed.rows,
        bytes_=completed.bytes,
        finished_at=completed.finished_at,
    )
    await outbox.enqueue(
        conn,
        ReloadFinished(
            execution_id=completed.request_id,
            dataset_id=dataset.id,
            domain=dataset.domain,
            dataset_name=dataset.name,
            status=completed.status,
            reason=reason,
            files=tuple(execution.files),
            rows=completed.rows,
            bytes=completed.bytes,
            started_at=execution.started_at,
            finished_at=completed.finished_at,
            triggered_by=execution.triggered_by,
            recipients=dataset.recipients(execution.triggered_by),
        ),
        service=SERVICE,
        subject=f"{dataset.domain}/{dataset.name}",
    )
    RELOADS_FINISHED.labels(completed.status).inc()
