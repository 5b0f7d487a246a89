"""The bulk-loader job engine: admission, the FIFO queue with dependencies, running loads
feed by feed, cancellation, status, and recovery after a restart.

One load runs at a time per graph (a PostgreSQL advisory lock, so also across replicas); up
to 64 wait behind it when they ask to be queued. A load lists its source prefix, loads vertex
files before edge files, and hands each feed to its format's loader. Loads are not atomic, as
in Neptune: with failOnError TRUE a load stops at its first error and keeps what it loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError

from loadbay_contracts import GraphLoadFinished, Recipient
from loadbay_loader import graph_csv, rdf, tabular
from loadbay_loader import load_jobs_repository as jobs
from loadbay_loader.compression import decompressed
from loadbay_loader.feeds import (
    DEFAULT_BASE_URI,
    DEFAULT_NAMED_GRAPH,
    FeedCounts,
    FeedError,
    FeedLoader,
    FeedResult,
)
from loadbay_loader.limits import UnreadableFile
from loadbay_loader.load_request import LoadRequest, parse_bool, threads_for
from loadbay_loader.neptune_errors import (
    BadRequest,
    LoadIdNotFound,
    LoadUrlAccessDenied,
    S3Problem,
)
from loadbay_loader.settings import LoaderSettings
from loadbay_platform import outbox
from loadbay_platform.auth import Principal
from loadbay_platform.outages import DATABASE_ERRORS

SERVICE = "loader"
# A cancelled load's feeds stop at their next batch; one that has not stopped this long after
# the cancel was seen (a statement waiting on a lock, a slow batch) is interrupted.
CANCEL_POLL_S = 0.5
CANCEL_GRACE_S = 2.0

log = logging.getLogger(__name__)
FEED_LOADERS: dict[str, FeedLoader] = {
    "csv": graph_csv.load_csv_feed,
    "opencypher": graph_csv.load_opencypher_feed,
    "ntriples": rdf.load_rdf_feed,
    "nquads": rdf.load_rdf_feed,
    "rdfxml": rdf.load_rdf_feed,
    "turtle": rdf.load_rdf_feed,
}
FAILED_FEED = {
    "NoSuchKey": ("LOAD_DATA_FAILED_DUE_TO_FEED_MODIFIED_OR_DELETED",
                  "FILE_MODIFICATION_OR_DELETION_ERROR"),
    "AccessDenied": ("LOAD_S3_ACCESS_DENIED_ERROR", "S3_ACCESS_DENIED_ERROR"),
}  # fmt: skip


# -- admission ---------------------------------------------------------------------------------


async def submit(
    pool: asyncpg.Pool,
    s3: Any,
    settings: LoaderSettings,
    region: str,
    request: LoadRequest,
    requested_by: Principal | None,
) -> str:
    """Admit a load request (Neptune's checks and messages) and return its load id. Who may
    load from where is loader_access's, checked before."""
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
            id=load_id,
            source=request.source,
            bucket=request.bucket,
            prefix=request.prefix,
            format=request.format,
            mode=request.mode,
            fail_on_error=request.fail_on_error,
            parallelism=request.parallelism,
            parser_configuration=request.parser_configuration,
            update_single_cardinality=request.update_single_cardinality_properties,
            user_provided_edge_ids=request.user_provided_edge_ids,
            queue_request=request.queue_request,
            edge_only_load=request.edge_only_load,
            dependencies=request.dependencies,
            region=request.region,
            iam_role_arn=request.iam_role_arn,
            requested_by=requested_by.user_id if requested_by else None,
            requested_by_email=requested_by.email if requested_by else None,
            status="LOAD_IN_QUEUE" if active else "LOAD_NOT_STARTED",
        )
        await jobs.notify_worker(conn, load_id)
    return load_id


async def _check_source(s3: Any, request: LoadRequest) -> None:
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
    if row is None or not row["requested_by_email"]:
        return  # no recipient: the API ran without authentication
    first = await jobs.errors_page(conn, load_id, 0, 5)
    await outbox.enqueue(
        conn,
        GraphLoadFinished(
            load_id=load_id,
            source=row["source"],
            format=row["format"],
            status=status,
            total_records=row["total_records"],
            total_duplicates=row["total_duplicates"],
            parsing_errors=row["parsing_errors"],
            datatype_mismatch_errors=row["datatype_mismatch_errors"],
            insert_errors=row["insert_errors"],
            first_errors=tuple(
                f"{e['error_code']} {e['file_name']}#{e['record_num']}: {e['error_message']}"
                for e in first
            ),
            started_at=row["start_time"],
            finished_at=row["finished_at"] or datetime.now(UTC),
            recipients=(Recipient(user_id=row["requested_by"], email=row["requested_by_email"]),),
        ),
        service=SERVICE,
    )


# -- status ------------------------------------------------------------------------------------


def _status_fields(row: Any, uri: str, run_number: int, retry_number: int) -> dict[str, Any]:
    start = row["start_time"]
    return {
        "fullUri": uri,
        "runNumber": run_number,
        "retryNumber": retry_number,
        "status": row["status"],
        "totalTimeSpent": round(row["total_time_spent"]),
        "startTime": int(start.timestamp()) if start else 0,
        "totalRecords": row["total_records"],
        "totalDuplicates": row["total_duplicates"],
        "parsingErrors": row["parsing_errors"],
        "datatypeMismatchErrors": row["datatype_mismatch_errors"],
        "insertErrors": row["insert_errors"],
    }


async def status_payload(
    pool: asyncpg.Pool, load_id: str, *, details: bool, errors: bool, page: int, per_page: int
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await jobs.get_load(conn, load_id)
        if row is None:
            raise LoadIdNotFound(f"The load with id = {load_id} does not exist")
        runs = (row["run_number"], row["retry_number"])
        overall = _status_fields(row, row["source"], *runs)
        feeds = await jobs.feeds(conn, load_id)
        payload: dict[str, Any] = {
            "feedCount": [
                {r["status"]: r["n"]} for r in await jobs.feed_status_counts(conn, load_id)
            ],
            "overallStatus": overall,
        }
        if details:
            payload["failedFeeds"] = [
                _status_fields(f, f["uri"], *runs)
                for f in feeds
                if f["status"] not in ("LOAD_COMPLETED", "LOAD_NOT_STARTED", "LOAD_IN_PROGRESS")
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
                        "errorCode": e["error_code"],
                        "errorMessage": e["error_message"],
                        "fileName": e["file_name"],
                        "recordNum": e["record_num"],
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
    requested_by: str | None = found["requested_by"]
    return requested_by


# -- running -----------------------------------------------------------------------------------


class ErrorLog:
    """The load's error log (the first 10,000 are kept, every one is counted)."""

    def __init__(self, pool: asyncpg.Pool, load_id: str) -> None:
        self.pool = pool
        self.load_id = load_id

    async def add(self, error: FeedError) -> None:
        async with self.pool.acquire() as conn:
            await jobs.add_error(
                conn, self.load_id, error.code, error.message, error.file_name, error.record_num
            )


class Worker:
    """Runs queued loads one at a time, in FIFO order, until cancelled."""

    def __init__(
        self, pool: asyncpg.Pool, s3: Any, settings: LoaderSettings, poll_interval_s: float = 1.0
    ) -> None:
        self.pool = pool
        self.s3 = s3
        self.settings = settings
        self.poll_interval_s = poll_interval_s
        self.vcpus = settings.vcpus or os.cpu_count() or 1
        self._wake = asyncio.Event()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self._run_while_holding_the_lock()
            except DATABASE_ERRORS as exc:
                log.warning("bulk-load worker: %r; retrying", exc)
            await asyncio.sleep(self.poll_interval_s)

    async def _run_while_holding_the_lock(self) -> None:
        async with self.pool.acquire(timeout=30) as holder:
            if not await jobs.try_become_runner(holder):
                return  # another replica runs loads
            await holder.add_listener(jobs.CHANNEL, self._on_notify)
            try:
                while True:
                    # Holding the lock and idle, any load still "in progress" was left by a
                    # process that died while it held the lock: put it back at its place.
                    await self._fail_crash_loops()
                    async with self.pool.acquire() as conn:
                        recovered = await jobs.recover_interrupted(conn, self.settings.max_restarts)
                    if recovered:
                        log.warning("resuming loads interrupted by a restart: %s", recovered)
                    ran = await self.run_next()
                    if not ran:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
                        self._wake.clear()
            finally:
                with contextlib.suppress(Exception):
                    await holder.remove_listener(jobs.CHANNEL, self._on_notify)
                with contextlib.suppress(Exception):
                    await jobs.stop_being_runner(holder)

    async def _fail_crash_loops(self) -> None:
        """Fail the loads that the loader stopped during max_restarts times (each start
        resumed them, and they took the process down again), instead of resuming them."""
        most = self.settings.max_restarts
        async with self.pool.acquire() as conn:
            for load in await jobs.crash_looping(conn, most):
                where = f" while loading {load['uri']}" if load["uri"] else ""
                message = (
                    f"the loader stopped {load['run_number']} times while running this load"
                    f"{where} (LOADBAY_LOADER_MAX_RESTARTS={most}): it is failed, not resumed"
                    " again; check the file against the loader's limits and logs"
                )
                log.error("load %s: %s", load["id"], message)
                async with conn.transaction():
                    await jobs.fail_interrupted_feeds(conn, load["id"])
                    await jobs.add_error(
                        conn, load["id"], "INTERNAL_ERROR", message, load["uri"] or "", 0
                    )
                    await finish_load(conn, load["id"], "LOAD_FAILED")

    async def run_next(self) -> bool:
        """Settle what the queue's head allows: cancel, fail on dependencies, or run one."""
        async with self.pool.acquire() as conn:
            waiting = await jobs.waiting_loads(conn)
            for job in waiting:
                if job["cancel_requested"]:
                    async with conn.transaction():
                        await finish_load(conn, job["id"], "LOAD_CANCELLED_BY_USER")
                    return True
                deps = await jobs.statuses_of(conn, job["dependencies"])
                if any(
                    deps.get(d) not in (*jobs.ACTIVE, "LOAD_COMPLETED") for d in job["dependencies"]
                ):
                    async with conn.transaction():
                        await finish_load(
                            conn, job["id"], "LOAD_FAILED_BECAUSE_DEPENDENCY_NOT_SATISFIED"
                        )
                    return True  # its dependents are settled on the next pass
                if all(deps.get(d) == "LOAD_COMPLETED" for d in job["dependencies"]):
                    break
            else:
                return False
        await self.run_load(job)
        return True

    async def run_load(self, job: Any) -> None:
        load_id = job["id"]
        async with self.pool.acquire() as conn:
            await jobs.start_load(conn, load_id)
        try:
            status = await self._run_feeds(job)
        except Exception as exc:  # the load ends with a reason, never stays "in progress"
            log.exception("load %s failed unexpectedly", load_id)
            await ErrorLog(self.pool, load_id).add(
                FeedError("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}", job["source"], 0)
            )
            status = "LOAD_UNEXPECTED_ERROR"
        async with self.pool.acquire() as conn, conn.transaction():
            await finish_load(conn, load_id, status)
        log.info("load %s of %s finished: %s", load_id, job["source"], status)

    async def _run_feeds(self, job: Any) -> str:
        load_id = job["id"]
        errors = ErrorLog(self.pool, load_id)
        async with self.pool.acquire() as conn:
            planned = await jobs.feeds(conn, load_id)
        if not planned:
            plan = await self._plan(job, errors)
            if plan is None:
                return "LOAD_FAILED"
            async with self.pool.acquire() as conn:
                await jobs.insert_feeds(conn, load_id, [(uri, kind) for uri, kind, _ in plan])
                planned = await jobs.feeds(conn, load_id)
            etags = {uri: etag for uri, _, etag in plan}
        else:  # a load resumed after a restart: its feeds are planned already
            etags = dict(await self._list(job))
        todo = [f for f in planned if f["status"] in ("LOAD_NOT_STARTED", "LOAD_IN_PROGRESS")]
        started = time.perf_counter()
        stop = asyncio.Event()
        semaphore = asyncio.Semaphore(threads_for(job["parallelism"], self.vcpus))
        cancelled = self._cancel_check(load_id, stop)

        async def run(feed: Any) -> str:
            async with semaphore:
                if stop.is_set() or await cancelled():
                    return "LOAD_NOT_STARTED"
                status = await self._run_feed(
                    job, feed["uri"], etags.get(feed["uri"], ""), errors, cancelled
                )
                if status != "LOAD_COMPLETED" and job["fail_on_error"]:
                    stop.set()
                return status

        for kind in ("vertex", "edge", "rdf"):  # every vertex file before any edge file
            group = [f for f in todo if f["kind"] == kind]
            finished = await self._until_cancelled(load_id, asyncio.gather(*map(run, group)))
            if not finished:
                stop.set()
                await self._mark_interrupted_feeds(load_id)
            if stop.is_set():
                break
        async with self.pool.acquire() as conn:
            await jobs.add_totals(conn, load_id, time.perf_counter() - started, FeedCounts())
            if await jobs.is_cancel_requested(conn, load_id):
                return "LOAD_CANCELLED_BY_USER"
            feeds = await jobs.feeds(conn, load_id)
        if all(f["status"] == "LOAD_COMPLETED" for f in feeds):
            return "LOAD_COMPLETED"
        return "LOAD_FAILED"

    async def _until_cancelled(self, load_id: str, work: Awaitable[list[str]]) -> bool:
        """Await the feeds; True when they finished, False when a cancel interrupted them
        (they had CANCEL_GRACE_S to stop at a batch boundary first)."""
        task = asyncio.ensure_future(work)
        try:
            while not task.done():
                await asyncio.wait([task], timeout=CANCEL_POLL_S)
                if task.done():
                    break
                async with self.pool.acquire() as conn:
                    if await jobs.is_cancel_requested(conn, load_id):
                        await asyncio.wait([task], timeout=CANCEL_GRACE_S)
                        break
            if task.done():
                task.result()
                return True
            log.warning("load %s: cancelled, interrupting its running feeds", load_id)
            return False
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _mark_interrupted_feeds(self, load_id: str) -> None:
        async with self.pool.acquire() as conn:
            for feed in await jobs.feeds(conn, load_id):
                if feed["status"] == "LOAD_IN_PROGRESS":
                    await jobs.finish_feed(
                        conn, load_id, feed["uri"], "LOAD_CANCELLED_BY_USER", 0.0, FeedCounts()
                    )

    def _cancel_check(self, load_id: str, stop: asyncio.Event) -> Callable[[], Awaitable[bool]]:
        async def cancelled() -> bool:
            if stop.is_set():
                return True
            async with self.pool.acquire() as conn:
                if await jobs.is_cancel_requested(conn, load_id):
                    stop.set()
            return stop.is_set()

        return cancelled

    async def _plan(self, job: Any, errors: ErrorLog) -> list[tuple[str, str, str]] | None:
        """The feeds to load, as (uri, kind, etag), vertex files first; None if the load
        must not run (RESUME without a previous load)."""
        objects = await self._list(job)
        source = job["source"]
        if job["mode"] in ("RESUME", "AUTO"):
            async with self.pool.acquire() as conn:
                previous = await jobs.has_previous_load(conn, source, job["id"])
                done = await jobs.loaded_files(conn, source)
            if job["mode"] == "RESUME" and not previous:
                await errors.add(FeedError(
                    "INTERNAL_ERROR",
                    f"RESUME found no previous load from {source}; use mode NEW or AUTO",
                    source, 0,
                ))  # fmt: skip
                return None
            objects = [(uri, etag) for uri, etag in objects if done.get(uri) != etag]
        plan: list[tuple[str, str, str]] = []
        for uri, etag in objects:
            kind = "rdf"
            if job["format"] in ("csv", "opencypher"):
                kind = "vertex" if job["edge_only_load"] else await self._kind(job, uri)
            plan.append((uri, kind, etag))
        if not job["edge_only_load"]:
            plan.sort(key=lambda p: p[1] == "edge")  # stable: listing order within a kind
        return plan

    async def _list(self, job: Any) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=job["bucket"], Prefix=job["prefix"]):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    uri = f"s3://{job['bucket']}/{obj['Key']}"
                    found.append((uri, obj["ETag"].strip('"')))
        return found

    async def _kind(self, job: Any, uri: str) -> str:
        """vertex or edge, from the file's header line."""
        header = b""
        stream = self._chunks(uri)()
        try:
            async for chunk in stream:
                header += chunk
                if b"\n" in header or len(header) > 1 << 20:
                    break
        except (ClientError, BotoCoreError, UnreadableFile):
            return "vertex"  # unreadable: its own feed reports why
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        line = header.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff").strip()
        return graph_csv.feed_kind(line, job["format"])

    def _chunks(self, uri: str) -> Callable[[], AsyncIterator[bytes]]:
        bucket, key = uri.removeprefix("s3://").split("/", 1)

        def open_feed() -> AsyncIterator[bytes]:
            return decompressed(key, tabular.s3_chunks(self.s3, bucket, key))

        return open_feed

    async def _run_feed(
        self,
        job: Any,
        uri: str,
        etag: str,
        errors: ErrorLog,
        cancelled: Callable[[], Awaitable[bool]],
    ) -> str:
        load_id = job["id"]
        async with self.pool.acquire() as conn:
            await jobs.start_feed(conn, load_id, uri)
        started = time.perf_counter()
        request = _request_of(job)
        loader = FEED_LOADERS[job["format"]]
        result = FeedResult()
        try:
            result = await loader(
                self.pool, self._chunks(uri), uri=uri, options=request.options(),
                errors=errors, cancelled=cancelled,
            )  # fmt: skip
            failed = result.stopped_on_error or any(
                (result.counts.parsing_errors, result.counts.datatype_mismatch_errors,
                 result.counts.insert_errors)
            )  # fmt: skip
            status = "LOAD_FAILED" if failed else "LOAD_COMPLETED"
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status, error_code = FAILED_FEED.get(code, ("LOAD_S3_READ_ERROR", "INTERNAL_ERROR"))
            await errors.add(FeedError(error_code, f"cannot read {uri}: {code}", uri, 0))  # type: ignore[arg-type]
        except BotoCoreError as exc:
            status = "LOAD_S3_READ_ERROR"
            await errors.add(FeedError("INTERNAL_ERROR", f"cannot read {uri}: {exc}", uri, 0))
        except UnreadableFile as exc:  # a bomb, a corrupt .gz: the file fails, the rest goes on
            status = "LOAD_FAILED"
            result.counts.parsing_errors += 1
            await errors.add(FeedError("PARSING_ERROR", str(exc), uri, 0))
        if status == "LOAD_COMPLETED" and await cancelled():
            # The loader returned early, or just finished: either way the user stopped it, and
            # RESUME loads the file again (duplicates are counted, never doubled).
            status = "LOAD_CANCELLED_BY_USER"
        seconds = time.perf_counter() - started
        async with self.pool.acquire() as conn, conn.transaction():
            await jobs.finish_feed(conn, load_id, uri, status, seconds, result.counts)
            await jobs.add_totals(conn, load_id, 0.0, result.counts)
            if status == "LOAD_COMPLETED":
                await jobs.remember_file(conn, job["source"], uri, etag, load_id)
        return status


def _request_of(job: Any) -> LoadRequest:
    parser = job["parser_configuration"]
    if isinstance(parser, str):
        parser = json.loads(parser)
    return LoadRequest(
        source=job["source"],
        bucket=job["bucket"],
        prefix=job["prefix"],
        format=job["format"],
        iam_role_arn=job["iam_role_arn"],
        region=job["region"],
        mode=job["mode"],
        fail_on_error=job["fail_on_error"],
        parallelism=job["parallelism"],
        named_graph_uri=parser.get("namedGraphUri") or DEFAULT_NAMED_GRAPH,
        base_uri=parser.get("baseUri") or DEFAULT_BASE_URI,
        allow_empty_strings=parse_bool("allowEmptyStrings", parser.get("allowEmptyStrings"), False),
        update_single_cardinality_properties=job["update_single_cardinality"],
        user_provided_edge_ids=job["user_provided_edge_ids"],
        edge_only_load=job["edge_only_load"],
    )
