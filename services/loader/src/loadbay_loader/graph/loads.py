"""Bulk loads as the API sees them: admission (Neptune's checks and messages, the queue of
64 with dependencies), cancellation, a load's terminal status and its email, and status.

Running them is load_runner.py's: one load at a time per graph, feed by feed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError

from loadbay_contracts import GraphLoadFinished, Recipient
from loadbay_loader.graph import loads_store as jobs
from loadbay_loader.graph.errors import (
    BadRequest,
    LoadIdNotFound,
    LoadUrlAccessDenied,
    S3Problem,
)
from loadbay_loader.graph.request import LoadRequest
from loadbay_loader.graph.rows import Counts
from loadbay_loader.settings import LoaderSettings
from loadbay_platform import outbox
from loadbay_platform.auth import Principal
from loadbay_platform.s3 import ObjectStore

SERVICE = "loader"

log = logging.getLogger(__name__)


# -- admission ---------------------------------------------------------------------------------


async def submit(
    pool: asyncpg.Pool,
    s3: ObjectStore,
    settings: LoaderSettings,
    region: str,
    request: LoadRequest,
    requested_by: Principal | None,
) -> str:
    """Admit a load request (Neptune's checks and messages) and return its load id. Who may
    load from where is access.py's, checked before."""
    if request.region != region:
        raise BadRequest(
            f"Bucket is not in provided Region ({request.region}): loadbay's object store is"
            f' in {region}; pass "region": "{region}"'
        )
    if settings.iam_roles:
        unknown = [
            r for r in request.iam_role_arn.split(",") if r.strip() not in settings.iam_roles
        ]
        if unknown:
            raise BadRequest(
                f"Couldn't find the AWS credential for iam_role_arn {unknown[0].strip()}:"
                " map it in LOADBAY_LOADER_IAM_ROLES"
            )
    await _check_source(s3, request)
    load_id = str(uuid.uuid4())
    async with pool.acquire() as conn, conn.transaction():
        await jobs.lock_queue(conn)
        if request.dependencies:
            known = await jobs.statuses_of(conn, request.dependencies)
            missing = [d for d in request.dependencies if d not in known]
            if missing:
                raise BadRequest(f"Dependency load id(s) not found: {', '.join(missing)}")
        counts = await jobs.count_by_status(conn, jobs.ACTIVE)
        active = sum(counts.values())
        waiting = sum(counts.get(s, 0) for s in jobs.WAITING)
        if active and not request.queue_request:
            raise BadRequest(
                f'Failed to start new load for the source "{request.source}". Max concurrent'
                ' load limit breached. Limit is 1 (set "queueRequest": "TRUE" to queue it)'
            )
        if waiting >= settings.queue_limit:
            raise BadRequest(
                f'Failed to start new load for the source "{request.source}". Max load task'
                f" queue size limit breached. Limit is {settings.queue_limit}"
            )
        await jobs.insert_load(
            conn,
            load_id,
            request,
            status="LOAD_IN_QUEUE" if active else "LOAD_NOT_STARTED",
            requested_by=requested_by.user_id if requested_by else None,
            requested_by_email=requested_by.email if requested_by else None,
        )
        await jobs.notify_worker(conn, load_id)
    return load_id


async def _check_source(s3: ObjectStore, request: LoadRequest) -> None:
    try:
        listing = await s3.list_objects_v2(Bucket=request.bucket, Prefix=request.prefix, MaxKeys=1)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            raise S3Problem(f"S3 bucket not found for source {request.source}") from exc
        if code in ("AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId"):
            raise LoadUrlAccessDenied(
                f"Access denied to {request.source} ({code}): check the role's permissions"
            ) from exc
        raise S3Problem(f"Unable to perform S3 list operation on {request.source}: {code}") from exc
    except BotoCoreError as exc:
        raise S3Problem(
            f"Unable to connect to S3 endpoint. Provided source = {request.source} and"
            f" region = {request.region}: {exc}"
        ) from exc
    if not listing.get("Contents"):
        raise S3Problem(f"The source {request.source} does not exist/not reachable")


async def cancel(pool: asyncpg.Pool, load_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        status = await jobs.request_cancel(conn, load_id)
        if status is None:
            raise LoadIdNotFound(f"The load with id = {load_id} does not exist or not active")
        if status in jobs.WAITING:
            await finish_load(conn, load_id, "LOAD_CANCELLED_BY_USER")
        await jobs.notify_worker(conn, load_id)


async def finish_load(conn: asyncpg.Connection, load_id: str, status: str) -> None:
    """Give a load its terminal status and tell whoever asked for it (graph.load.finished)."""
    await jobs.set_status(conn, load_id, status, terminal=True)
    row = await jobs.get_load(conn, load_id)
    if row is None or not row.requested_by_email:
        return  # no recipient: the API ran without authentication
    first = await jobs.errors_page(conn, load_id, 0, 5)
    await outbox.enqueue(
        conn,
        GraphLoadFinished(
            load_id=load_id,
            source=row.source,
            format=row.format,
            status=status,
            total_records=row.total_records,
            total_duplicates=row.total_duplicates,
            parsing_errors=row.parsing_errors,
            datatype_mismatch_errors=row.datatype_mismatch_errors,
            insert_errors=row.insert_errors,
            first_errors=tuple(
                f"{e.error_code} {e.file_name}#{e.record_num}: {e.error_message}" for e in first
            ),
            started_at=row.start_time,
            finished_at=row.finished_at or datetime.now(UTC),
            recipients=(Recipient(user_id=row.requested_by, email=row.requested_by_email),),
        ),
        service=SERVICE,
    )


# -- status ------------------------------------------------------------------------------------


def _status_fields(row: Counts, uri: str, run_number: int, retry_number: int) -> dict[str, Any]:
    start = row.start_time
    return {
        "fullUri": uri,
        "runNumber": run_number,
        "retryNumber": retry_number,
        "status": row.status,
        "totalTimeSpent": round(row.total_time_spent),
        "startTime": int(start.timestamp()) if start else 0,
        "totalRecords": row.total_records,
        "totalDuplicates": row.total_duplicates,
        "parsingErrors": row.parsing_errors,
        "datatypeMismatchErrors": row.datatype_mismatch_errors,
        "insertErrors": row.insert_errors,
    }


async def status_payload(
    pool: asyncpg.Pool, load_id: str, *, details: bool, errors: bool, page: int, per_page: int
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await jobs.get_load(conn, load_id)
        if row is None:
            raise LoadIdNotFound(f"The load with id = {load_id} does not exist")
        runs = (row.run_number, row.retry_number)
        overall = _status_fields(row, row.source, *runs)
        feeds = await jobs.feeds(conn, load_id)
        payload: dict[str, Any] = {
            "feedCount": [
                {status: n} for status, n in (await jobs.feed_status_counts(conn, load_id)).items()
            ],
            "overallStatus": overall,
        }
        if details:
            payload["failedFeeds"] = [
                _status_fields(f, f.uri, *runs)
                for f in feeds
                if f.status not in ("LOAD_COMPLETED", "LOAD_NOT_STARTED", "LOAD_IN_PROGRESS")
            ]
        if errors:
            offset = (page - 1) * per_page
            logs = await jobs.errors_page(conn, load_id, offset, per_page)
            payload["errors"] = {
                "startIndex": offset + 1 if logs else 0,
                "endIndex": offset + len(logs) if logs else 0,
                "loadId": load_id,
                "errorLogs": [
                    {
                        "errorCode": e.error_code,
                        "errorMessage": e.error_message,
                        "fileName": e.file_name,
                        "recordNum": e.record_num,
                    }
                    for e in logs
                ],
            }
    return payload


async def list_ids(
    pool: asyncpg.Pool, limit: int, include_queued: bool, requested_by: str | None = None
) -> list[str]:
    """Load ids, newest first: every load, or only those `requested_by` started."""
    async with pool.acquire() as conn:
        return await jobs.list_load_ids(conn, limit, include_queued, requested_by)


async def requester_of(pool: asyncpg.Pool, load_id: str) -> str | None:
    """Who started a load (None: the API ran without authentication)."""
    async with pool.acquire() as conn:
        found = await jobs.get_requester(conn, load_id)
    if found is None:
        raise LoadIdNotFound(f"The load with id = {load_id} does not exist")
    return found.requested_by
