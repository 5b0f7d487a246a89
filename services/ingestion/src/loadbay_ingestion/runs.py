"""Ingestion runs: queue, claim a slot, copy the remote objects, land them, announce.

A run is queued (API or schedule) and waits until a slot is free: at most
`max_concurrent_loads` runs are `running` across all replicas (the count and the claim are
serialized by an advisory lock). A running run lists the binding's directory path, plans each
object (planning.py), copies with bounded concurrency and records each completed copy in the
run's ledger at once. The end is one transaction: the `_SUCCESS` marker (LZ only), a
`file.landed` per copy and one for `_SUCCESS` (so the reload flow picks the batch up exactly as
for an upload), the dataset's ingested-files ledger, the run's status and `ingestion.finished`.
A run left `running` by a crashed replica goes stale (no heartbeat) and is resumed: the ledger
says what was copied already, so nothing is copied twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from loadbay_contracts import FileLanded, IngestionFinished, Recipient
from loadbay_ingestion import dataset_repository, planning, regions, repository
from loadbay_ingestion.copying import copy_object
from loadbay_ingestion.crypto import SecretBox
from loadbay_ingestion.endpoints import EndpointPolicy, EndpointRefused
from loadbay_ingestion.errors import RemoteAccessError
from loadbay_ingestion.metrics import (
    BYTES_COPIED,
    OBJECTS,
    RUN_SECONDS,
    RUNS_FINISHED,
    RUNS_STARTED,
)
from loadbay_ingestion.remote import (
    RemoteObject,
    check_remote_endpoint,
    explain,
    list_objects,
    remote_client,
)
from loadbay_ingestion.rows import Binding, Run, RunObject
from loadbay_ingestion.settings import IngestionSettings
from loadbay_platform import outbox
from loadbay_platform.errors import Conflict
from loadbay_platform.s3 import ObjectStore
from loadbay_platform.settings import S3Settings

SERVICE = "ingestion"
SUCCESS_FILE = "_SUCCESS"
log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """What executing a run needs; built once per process."""

    pool: asyncpg.Pool
    s3: ObjectStore  # loadbay's own object store (LZ, DLZ)
    s3_settings: S3Settings
    settings: IngestionSettings
    box: SecretBox
    policy: EndpointPolicy


async def queue_run(
    conn: asyncpg.Connection, binding: Binding, trigger: str, triggered_by: str
) -> str:
    """Queue a run of `binding`; Conflict while one is queued or running."""
    if binding.disabled_at is not None and trigger != "schedule":
        raise Conflict(str(binding.disabled_reason))
    run_id = str(uuid.uuid4())
    if not await repository.insert_run(conn, run_id, binding.id, trigger, triggered_by):
        active = await repository.active_run(conn, binding.id)
        raise Conflict(
            f"a run of {binding.dataset} is queued or running ({active}); runs of one"
            " dataset never overlap: wait for it to finish"
        )
    RUNS_STARTED.labels(trigger).inc()
    return run_id


async def claim(
    conn: asyncpg.Connection, worker: str, max_running: int, stale_after_s: float
) -> Run | None:
    """Take the next run to execute, in the caller's transaction: first a run whose replica
    died (it holds a slot already), else the oldest queued run if a slot is free."""
    await repository.lock_slots(conn)
    stale = await repository.claim_stale(conn, worker, stale_after_s)
    if stale is not None:
        log.info("resuming run %s left running by a stopped replica", stale.id)
        return stale
    if await repository.count_running(conn) >= max_running:
        return None
    return await repository.claim_queued(conn, worker)


def batch_prefix(binding: Binding, run: Run) -> str:
    assert run.upload_date is not None, "a run's upload date is fixed before it copies"
    return f"{binding.dataset}/upload_date={run.upload_date}/{binding.user_id}/{binding.file_type}/"


async def execute(ctx: RunContext, run_id: str) -> None:
    """Execute (or resume) a claimed run to its end. Cancellation leaves it `running`, to be
    resumed; any other failure ends it `failed` with the reason."""
    started = time.monotonic()
    try:
        await _execute(ctx, run_id)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("ingestion run %s failed", run_id)
        await _finish(ctx, run_id, failure=f"internal error: {type(exc).__name__}: {exc}")
    finally:
        RUN_SECONDS.observe(time.monotonic() - started)


async def _execute(ctx: RunContext, run_id: str) -> None:
    async with ctx.pool.acquire() as conn:
        run = await repository.get_run(conn, run_id)
        binding = await repository.binding_by_id(conn, run.binding_id) if run else None
        if run is None or binding is None:
            return  # deleted with its binding
        connection = await repository.connection_by_id(conn, binding.connection_id)
        assert connection is not None
        version = run.version or connection.version
        run = await repository.fix_run_plan(
            conn, run_id, version, planning.skip_lz(version, binding.dataset_type),
            int(time.time()),
        )  # fmt: skip
    problem = regions.opt_in_problem(connection.region, ctx.settings.enabled_opt_in_regions)
    if problem is None:
        async with ctx.pool.acquire() as conn:
            problem = await _binding_problem(conn, binding)
    if problem is None:
        try:
            await check_remote_endpoint(connection, ctx.policy)
        except EndpointRefused as exc:
            problem = str(exc)
    if problem is not None:
        await _finish(ctx, run_id, failure=problem)
        return
    prefix = planning.directory_prefix(binding.directory_path)
    bucket = connection.bucket
    try:
        async with remote_client(connection, ctx.settings, ctx.box, ctx.policy) as remote:
            objects = await list_objects(remote, bucket, prefix)
            if not objects:
                await _finish(ctx, run_id, failure=(
                    f"directory path {prefix or '/'!r} not found in bucket {bucket!r}:"
                    " no objects under it"
                ))  # fmt: skip
                return
            async with ctx.pool.acquire() as conn:
                names = [planning.name_in_dataset(o.key, prefix) for o in objects]
                ingested = await repository.ingested_among(conn, binding.id, names)
                copied = {r.source_key for r in await repository.copied_in_run(conn, run_id)}
            plan = planning.plan_objects(
                objects, prefix=prefix, file_type=binding.file_type, version=version,
                ingested=ingested, copied_in_run=copied,
            )  # fmt: skip
            async with ctx.pool.acquire() as conn:
                await repository.record_objects(conn, run_id, [
                    _row(o, prefix, "skipped", reason=why) for o, why in plan.skipped
                ] + [_row(o, prefix, "failed", reason=why) for o, why in plan.failed])  # fmt: skip
            if plan.failure is not None:
                await _finish(ctx, run_id, failure=plan.failure)
                return
            await _copy_all(ctx, remote, run, binding, bucket, prefix, plan.copy)
    except RemoteAccessError as exc:
        await _finish(ctx, run_id, failure=str(exc))
        return
    await _finish(ctx, run_id)


async def _binding_problem(conn: asyncpg.Connection, binding: Binding) -> str | None:
    """Why the binding may not ingest now: disabled (its dataset was deleted), or its creator,
    in whose name files land, may no longer use the dataset."""
    if binding.disabled_at is not None:
        return str(binding.disabled_reason)
    if binding.dataset_id is None:  # bound before datasets were known here
        return None
    dataset = await dataset_repository.dataset_by_id(conn, binding.dataset_id)
    if dataset is None or dataset.deleted_at is not None:
        return f"dataset {binding.dataset} no longer exists"
    if binding.user_id != dataset.owner_id and (binding.user_id not in dataset.authorized_users):
        return (
            f"{binding.user_id}, who bound {binding.dataset}, is no longer authorized on"
            " the dataset: ask its owner to authorize them, or bind it again as an authorized user"
        )
    return None


def _row(
    o: RemoteObject, prefix: str, status: str, *, dest_bucket: str | None = None,
    dest_key: str | None = None, dest_etag: str | None = None, reason: str | None = None,
) -> repository.ObjectRow:  # fmt: skip
    name = planning.name_in_dataset(o.key, prefix)
    return (o.key, name, o.size, o.etag, o.storage_class, status, dest_bucket, dest_key,
            dest_etag, reason)  # fmt: skip


async def _copy_all(
    ctx: RunContext, remote: Any, run: Run, binding: Binding, bucket: str,
    prefix: str, objects: list[RemoteObject],
) -> None:  # fmt: skip
    dest_bucket = ctx.s3_settings.dlz_bucket if run.skip_lz else ctx.s3_settings.lz_bucket
    folder = batch_prefix(binding, run)
    part_size = ctx.settings.part_size_mib << 20
    gate = asyncio.Semaphore(ctx.settings.copy_concurrency)

    async def one(o: RemoteObject) -> None:
        dest_key = folder + planning.file_name(planning.name_in_dataset(o.key, prefix))
        async with gate:
            try:
                etag = await copy_object(
                    remote, bucket, o.key, ctx.s3, dest_bucket, dest_key, size=o.size,
                    part_size=part_size,
                )  # fmt: skip
            except Exception as exc:  # recorded per object; the run fails with them listed
                row = _row(o, prefix, "failed", reason=explain(exc, bucket, f"read {o.key!r}"))
                OBJECTS.labels("failed").inc()
            else:
                row = _row(o, prefix, "copied", dest_bucket=dest_bucket, dest_key=dest_key,
                           dest_etag=etag)  # fmt: skip
                OBJECTS.labels("copied").inc()
                BYTES_COPIED.inc(o.size)
            # Recorded as each copy completes: a resumed run does not copy it again.
            async with ctx.pool.acquire() as conn:
                await repository.record_objects(conn, run.id, [row])

    await asyncio.gather(*(one(o) for o in objects))


async def _finish(ctx: RunContext, run_id: str, failure: str | None = None) -> None:
    """End the run in one transaction with its landing and its events."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        run = await repository.get_run(conn, run_id)
        binding = await repository.binding_by_id(conn, run.binding_id) if run else None
        if run is None or binding is None or run.status not in ("queued", "running"):
            return
        connection = await repository.connection_by_id(conn, binding.connection_id)
        assert connection is not None
        if binding.disabled_at is not None:
            # Deleted dataset: nothing lands, and its schedule ends with this failed run.
            failure = failure or str(binding.disabled_reason)
            await repository.delete_schedule(conn, binding.id)
        rows = await repository.run_objects(conn, run_id)
        copied = [r for r in rows if r.status == "copied"]
        skipped = [r for r in rows if r.status == "skipped"]
        failed = [r for r in rows if r.status == "failed"]
        if failure is None and failed:
            failure = (
                f"{len(failed)} object(s) could not be copied, so nothing was landed (the next"
                " run copies them again): "
                + "; ".join(f"{r.source_key}: {r.reason}" for r in failed[:20])
            )
        landed = copied if failure is None else []
        if landed:
            await _land(ctx, conn, run, binding, landed)
        OBJECTS.labels("skipped").inc(len(skipped))
        status = "failed" if failure else "succeeded"
        done = await repository.finish_run(
            conn, run_id, status=status, reason=failure, copied=len(landed),
            skipped=len(skipped), failed=len(failed),
            bytes_copied=sum(r.size for r in landed),
        )  # fmt: skip
        if done is None:
            return
        await outbox.enqueue(
            conn,
            IngestionFinished(
                run_id=run_id,
                connection=connection.name,
                dataset=binding.dataset,
                version=run.version or connection.version,
                status=status,
                reason=failure,
                copied=tuple(r.source_key for r in landed),
                skipped=tuple(f"{r.source_key}: {r.reason}" for r in skipped),
                failed=tuple(f"{r.source_key}: {r.reason}" for r in failed),
                bytes_copied=sum(r.size for r in landed),
                skip_lz=run.skip_lz,
                started_at=run.started_at or run.queued_at,
                finished_at=done.finished_at,
                recipients=(Recipient(user_id=binding.user_id, email=binding.user_email),),
            ),
            service=SERVICE,
            correlation_id=run_id,
            subject=binding.dataset,
        )
    if failure is not None and copied:
        await _remove_unlanded(ctx, copied)
    RUNS_FINISHED.labels(status, run.version or connection.version).inc()
    log.info("ingestion run %s of %s %s", run_id, binding.dataset, status,
             extra={"fields": {"reason": failure}})  # fmt: skip


async def _land(
    ctx: RunContext, conn: asyncpg.Connection, run: Run, binding: Binding,
    copied: list[RunObject],
) -> None:  # fmt: skip
    """The `_SUCCESS` marker (LZ only) and a `file.landed` per copy, then one for the marker,
    in the caller's transaction: the reload flow takes the batch as it takes an upload."""
    bucket = copied[0].dest_bucket
    success_key = batch_prefix(binding, run) + SUCCESS_FILE
    if not run.skip_lz:
        await ctx.s3.put_object(Bucket=bucket, Key=success_key, Body=b"")
    now = datetime.now(UTC)
    for r in copied:
        await outbox.enqueue(
            conn,
            FileLanded(bucket=r.dest_bucket, key=r.dest_key, size=r.size,
                       etag=r.dest_etag, landed_at=now, source="ingestion"),
            service=SERVICE, correlation_id=run.id, subject=binding.dataset,
        )  # fmt: skip
    await outbox.enqueue(
        conn,
        FileLanded(bucket=bucket, key=success_key, size=0, etag="", landed_at=now,
                   source="ingestion"),
        service=SERVICE, correlation_id=run.id, subject=binding.dataset,
    )  # fmt: skip
    await repository.insert_ingested(
        conn, binding.id, run.id, [(r.name, r.size, r.etag) for r in copied]
    )


async def _remove_unlanded(ctx: RunContext, copied: list[RunObject]) -> None:
    """Copies of a failed run were not announced: remove them, so that nothing half-ingested
    sits in the LZ (the next run copies them again; they are not in the dataset's ledger)."""
    for r in copied:
        try:
            await ctx.s3.delete_object(Bucket=r.dest_bucket, Key=r.dest_key)
        except Exception:  # best effort: a leftover copy is never announced
            log.warning("could not remove %s/%s of a failed run", r.dest_bucket, r.dest_key)
