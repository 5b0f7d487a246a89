"""Distribution runs: plan what each client workspace loads, ask the loader, record outcomes.

A run lists the data product's source location, names every file that breaks the naming
convention as a problem, and plans per dataset which batch each workspace of the dataset's
segment loads (planning.py). Workspaces loading the same batch share one `workspace.load.requested`.
Each `workspace.load.completed` moves LSTS and failure counts; workspaces catching up after a
failure continue within the run; when no load is pending the run ends and is announced.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError

from loadbay_contracts import (
    DistributionFinished,
    Recipient,
    WorkspaceColumn,
    WorkspaceLoadCompleted,
    WorkspaceLoadRequested,
    WorkspaceTarget,
)
from loadbay_distribution import naming, planning, repository
from loadbay_distribution.metrics import RUNS_FINISHED, RUNS_STARTED, WORKSPACE_LOADS
from loadbay_distribution.rows import Dataset, LoadState, Product, Run
from loadbay_platform import outbox
from loadbay_platform.errors import Conflict
from loadbay_platform.reasons import truncate, truncate_all
from loadbay_platform.s3 import ObjectStore

SERVICE = "distribution"
log = logging.getLogger(__name__)


class SourceUnreadable(Exception):
    """The data product's source location cannot be listed (no such bucket, access denied,
    object storage unreachable): the run fails with this reason."""


async def list_source(s3: ObjectStore, bucket: str, prefix: str) -> list[tuple[str, datetime]]:
    found: list[tuple[str, datetime]] = []
    paginator = s3.get_paginator("list_objects_v2")
    try:
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    found.append((obj["Key"], obj["LastModified"]))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        detail = f"{error.get('Code', 'error')} ({error.get('Message', '')})".replace(" ()", "")
        raise SourceUnreadable(f"cannot list the source s3://{bucket}/{prefix}: {detail}") from exc
    except BotoCoreError as exc:
        raise SourceUnreadable(f"cannot list the source s3://{bucket}/{prefix}: {exc}") from exc
    return found


def _state(r: LoadState) -> planning.WorkspaceState:
    return planning.WorkspaceState(
        workspace_id=r.workspace_id,
        created_at=r.created_at,
        lsts=r.lsts,
        failure_streak=r.failure_streak,
        last_failed_ts=r.last_failed_ts,
    )


async def start_run(
    conn: asyncpg.Connection,
    s3: ObjectStore,
    product: Product,
    trigger: str,
    triggered_by: str,
) -> str:
    """Start a run of `product`; Conflict if one is running."""
    await repository.lock_product(conn, product.id)
    running = await repository.running_run(conn, product.id)
    if running is not None:
        raise Conflict(
            f"a run of {product.name} is in progress ({running}); runs of one data product"
            " never overlap: wait for it to finish"
        )
    datasets = await repository.list_datasets(conn, product.id)
    run_id = str(uuid.uuid4())
    try:
        objects = await list_source(s3, product.bucket, product.prefix)
    except SourceUnreadable as exc:
        # A failed run with the reason (and its email), never an error of the caller.
        await repository.insert_run(conn, run_id, product.id, trigger, triggered_by, {},
                                    [truncate(str(exc))])  # fmt: skip
        RUNS_STARTED.labels(trigger).inc()
        await _finish(conn, product, run_id, failed=True)
        return run_id
    batches, problems = naming.batches(objects, [d.name for d in datasets])
    plan: dict[str, Any] = {}
    loads: list[tuple[Dataset, naming.Batch, list[WorkspaceTarget]]] = []
    for dataset in datasets:
        rows = await repository.states(conn, product.id, dataset.name, dataset.segment)
        by_id = {r.workspace_id: r for r in rows}
        dataset_plan = planning.plan_dataset(
            batches.get(dataset.name, []), [_state(r) for r in rows]
        )
        plan[dataset.name] = {
            "target": dataset_plan.target,
            "catch_up": sorted(dataset_plan.catch_up),
            "newest": dataset_plan.newest,
            # The listing is taken once: catching up loads from it, never from a new one.
            "later": [
                {"timestamp": b.timestamp, "mode": b.mode, "keys": list(b.keys)}
                for b in dataset_plan.later
            ],
        }
        grouped: dict[naming.Batch, list[WorkspaceTarget]] = defaultdict(list)
        for workspace_id, batch in dataset_plan.first.items():
            row = by_id[workspace_id]
            grouped[batch].append(_target(row, _state(row).mode_for(batch)))
        loads += [(dataset, batch, targets) for batch, targets in grouped.items()]
    await repository.insert_run(
        conn, run_id, product.id, trigger, triggered_by, plan,
        truncate_all([str(p) for p in problems]),
    )  # fmt: skip
    for dataset, batch, targets in loads:
        await _request_load(conn, product, run_id, dataset, batch, targets)
    RUNS_STARTED.labels(trigger).inc()
    if not loads:
        await _finish(conn, product, run_id)
    return run_id


def _target(row: LoadState, mode: str) -> WorkspaceTarget:
    return WorkspaceTarget(
        workspace_id=row.workspace_id,
        client_id=row.client_id,
        schema_name=row.schema_name,
        mode=mode,
    )


async def _request_load(
    conn: asyncpg.Connection,
    product: Product,
    run_id: str,
    dataset: Dataset,
    batch: naming.Batch,
    targets: list[WorkspaceTarget],
) -> None:
    request_id = str(uuid.uuid4())
    columns = dataset.columns
    await repository.insert_run_load(
        conn, request_id, run_id, dataset.name, batch.timestamp, batch.keys,
        [t.model_dump() for t in targets],
    )  # fmt: skip
    await outbox.enqueue(
        conn,
        WorkspaceLoadRequested(
            request_id=request_id,
            run_id=run_id,
            data_product_id=product.id,
            dataset=dataset.name,
            columns=tuple(WorkspaceColumn(**c) for c in columns),
            grain=tuple(dataset.grain),
            bucket=product.bucket,
            keys=batch.keys,
            timestamp=batch.timestamp,
            targets=tuple(targets),
        ),
        service=SERVICE,
        subject=f"{product.name}/{dataset.name}",
    )


async def record_outcome(conn: asyncpg.Connection, done: WorkspaceLoadCompleted) -> None:
    """Apply a finished load to LSTS and failures, continue catch-ups, and end the run when
    nothing is pending."""
    load = await repository.finish_run_load(conn, done.request_id)
    if load is None:
        return  # already applied
    run = await repository.lock_run(conn, done.run_id)
    product = await repository.product_by_id(conn, done.data_product_id)
    if run is None or product is None or run.status != "running":
        return
    results = {r.workspace_id: r for r in done.results}
    plan = run.plan.get(done.dataset, {})
    # A failure counts against the newest file of the run's listing: once per timestamp.
    counted = max(done.timestamp, plan.get("newest") or done.timestamp)
    continuing: list[str] = []
    outcomes: list[repository.NewResult] = []
    for target in load.targets:
        result = results.get(target["workspace_id"])
        ok = result is not None and result.status == "succeeded"
        reason = None if ok else (result.reason if result else "the loader reported no result")
        reason = truncate(reason) if reason is not None else None
        if ok:
            continuing.append(target["workspace_id"])
        else:
            await repository.record_failure(
                conn, target["workspace_id"], done.dataset, counted, reason or ""
            )
        WORKSPACE_LOADS.labels("succeeded" if ok else "failed").inc()
        outcomes.append(
            repository.NewResult(
                workspace_id=target["workspace_id"],
                client_id=target["client_id"],
                mode=target["mode"],
                status="succeeded" if ok else "failed",
                rows_upserted=result.rows_upserted if result else 0,
                rows_deleted=result.rows_deleted if result else 0,
                reason=reason,
            )
        )
    await repository.record_successes(conn, continuing, done.dataset, done.timestamp)
    await repository.insert_results(
        conn, done.run_id, done.dataset, done.timestamp, ", ".join(load.keys), outcomes
    )
    # Unknown means unknown to the data product: a client id of a workspace that is not a
    # target of this load (it loads another file of the dataset in this run) is known.
    known = {w.client_id for w in await repository.list_workspaces(conn, product.id)}
    unknown = [c for c in done.unknown_client_ids if c not in known]
    problem = truncate(
        f"{', '.join(load.keys)}: rows for unknown client ids {', '.join(unknown)} were not loaded"
    )
    if unknown and problem not in run.problems:  # once, however many loads read the file
        await repository.add_problems(conn, done.run_id, [problem])
    catch_up = [w for w in continuing if w in plan.get("catch_up", [])]
    if catch_up:
        await _continue(conn, product, run, done.dataset, plan, catch_up)
    if await repository.pending_run_loads(conn, done.run_id) == 0:
        await _finish(conn, product, done.run_id)


async def _continue(
    conn: asyncpg.Connection,
    product: Product,
    run: Run,
    dataset_name: str,
    plan: dict[str, Any],
    workspace_ids: list[str],
) -> None:
    """Load the next batch of the run's own listing into workspaces catching up."""
    datasets = {d.name: d for d in await repository.list_datasets(conn, product.id)}
    dataset = datasets.get(dataset_name)
    if dataset is None:
        return
    later = [
        naming.Batch(dataset_name, b["timestamp"], b["mode"], tuple(b["keys"]))
        for b in plan.get("later", [])
    ]
    rows = await repository.states(conn, product.id, dataset_name, dataset.segment)
    grouped: dict[naming.Batch, list[WorkspaceTarget]] = defaultdict(list)
    for row in rows:
        if row.workspace_id not in workspace_ids:
            continue
        state = _state(row)
        batch = planning.continue_after(later, state, plan.get("target"))
        if batch is not None:
            grouped[batch].append(_target(row, state.mode_for(batch)))
    for batch, targets in grouped.items():
        await _request_load(conn, product, run.id, dataset, batch, targets)


async def _finish(
    conn: asyncpg.Connection, product: Product, run_id: str, *, failed: bool = False
) -> None:
    run = await repository.get_run(conn, run_id)
    assert run is not None
    results = await repository.run_results(conn, run_id)
    failed_loads = [r for r in results if r.status == "failed"]
    succeeded = [r for r in results if r.status == "succeeded"]
    status = "failed" if failed else "succeeded"
    if failed_loads:
        status = "partially_failed" if succeeded else "failed"
    needs_recovery = []
    for workspace in await repository.list_workspaces(conn, product.id):
        for dataset, state in workspace.states.items():
            if state["failure_streak"] >= planning.MAX_FAILURES:
                needs_recovery.append(f"{workspace.client_id}/{dataset}")
    finished_at = datetime.now(UTC)
    await repository.finish_run(conn, run_id, status, finished_at)
    await outbox.enqueue(
        conn,
        DistributionFinished(
            run_id=run_id,
            data_product_id=product.id,
            data_product=product.name,
            status=status,
            loads=len(results),
            failures=tuple(f"{r.client_id}/{r.dataset}: {r.reason}" for r in failed_loads),
            needs_recovery=tuple(needs_recovery),
            problems=tuple(run.problems),
            started_at=run.started_at,
            finished_at=finished_at,
            recipients=(Recipient(user_id=product.owner_id, email=product.owner_email),),
        ),
        service=SERVICE,
        subject=product.name,
    )
    RUNS_FINISHED.labels(status).inc()
    log.info("distribution run %s of %s %s", run_id, product.name, status)
