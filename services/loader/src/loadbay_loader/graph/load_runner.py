"""Running bulk loads: one at a time per graph, in FIFO order, feed by feed, and picking up
after a restart.

One load runs at a time per graph: the runner holds a PostgreSQL advisory lock, so also
across replicas. A load lists its source prefix, loads vertex files before edge files, and
hands each feed to its format's loader. Loads are not atomic, as in Neptune: with failOnError
TRUE a load stops at its first error and keeps what it loaded.

Loads run on a pool of their own (`LOADBAY_LOADER_GRAPH_POOL_SIZE`), so they never starve the
service's events and API. The runner holds one connection (the lock), each feed holds one,
and the load's watcher (load_watch.py) takes one for a moment; no connection is ever held
while waiting for another one of the same load, and feeds are capped at the pool's size
minus those two, so they can never wait on each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError

from loadbay_loader.graph import csv_feed, rdf
from loadbay_loader.graph import loads_store as jobs
from loadbay_loader.graph.feeds import (
    DEFAULT_BASE_URI,
    DEFAULT_NAMED_GRAPH,
    FeedCounts,
    FeedError,
    FeedLoader,
    FeedResult,
)
from loadbay_loader.graph.load_watch import ErrorLog, LoadWatch
from loadbay_loader.graph.loads import finish_load
from loadbay_loader.graph.request import LoadRequest, parse_bool, threads_for
from loadbay_loader.graph.rows import Feed, GraphLoad
from loadbay_loader.settings import LoaderSettings
from loadbay_loader.streaming import objects
from loadbay_loader.streaming.compression import decompressed
from loadbay_loader.streaming.limits import UnreadableFile
from loadbay_platform.db import close_pool, create_pool
from loadbay_platform.outages import DATABASE_ERRORS
from loadbay_platform.s3 import ObjectStore
from loadbay_platform.service import Resources, schema_for
from loadbay_platform.waker import Waker

log = logging.getLogger(__name__)

# A cancelled load's feeds stop at their next batch; one that has not stopped this long after
# the cancel was seen (a statement waiting on a lock, a slow batch) is interrupted.
CANCEL_GRACE_S = 2.0
# Connections of the load pool that are not a feed's: the runner's lock and the watcher.
RESERVED_CONNECTIONS = 2

FEED_LOADERS: dict[str, FeedLoader] = {
    "csv": csv_feed.load_csv_feed,
    "opencypher": csv_feed.load_csv_feed,
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


async def run_worker(res: Resources, settings: LoaderSettings) -> None:
    """The service's background task: the runner, on a pool of its own, until cancelled."""
    postgres = res.settings.postgres
    pool = await create_pool(
        postgres.model_copy(update={"pool_min_size": 1, "pool_max_size": settings.graph_pool_size}),
        schema_for(res.service),
    )
    try:
        await Worker(pool, res.s3, settings, listen_pool=res.pool).run()
    finally:
        await close_pool(pool)


class Worker:
    """Runs queued loads one at a time, in FIFO order, until cancelled."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        s3: ObjectStore,
        settings: LoaderSettings,
        poll_interval_s: float = 1.0,
        listen_pool: asyncpg.Pool | None = None,
    ) -> None:
        self.pool = pool
        self.s3 = s3
        self.settings = settings
        self.poll_interval_s = poll_interval_s
        self.vcpus = settings.vcpus or os.cpu_count() or 1
        # Where to LISTEN for new loads: the service's pool shares one listening connection
        # among all its loops; the load pool's connections are for loads.
        self.listen_pool = listen_pool or pool

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
            waker = Waker(self.listen_pool, jobs.CHANNEL)
            try:
                await waker.listen()  # before the first look: a load started meanwhile wakes it
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
                        await waker.wait(self.poll_interval_s)
            finally:
                await waker.close()
                with contextlib.suppress(Exception):
                    await jobs.stop_being_runner(holder)

    async def _fail_crash_loops(self) -> None:
        """Fail the loads that the loader stopped during max_restarts times (each start
        resumed them, and they took the process down again), instead of resuming them."""
        most = self.settings.max_restarts
        async with self.pool.acquire() as conn:
            for load in await jobs.crash_looping(conn, most):
                where = f" while loading {load.uri}" if load.uri else ""
                message = (
                    f"the loader stopped {load.run_number} times while running this load"
                    f"{where} (LOADBAY_LOADER_MAX_RESTARTS={most}): it is failed, not resumed"
                    " again; check the file against the loader's limits and logs"
                )
                log.error("load %s: %s", load.id, message)
                async with conn.transaction():
                    await jobs.fail_interrupted_feeds(conn, load.id)
                    await jobs.add_error(
                        conn, load.id, "INTERNAL_ERROR", message, load.uri or "", 0
                    )
                    await finish_load(conn, load.id, "LOAD_FAILED")

    async def run_next(self) -> bool:
        """Settle what the queue's head allows: cancel, fail on dependencies, or run one."""
        async with self.pool.acquire() as conn:
            waiting = await jobs.waiting_loads(conn)
            for job in waiting:
                if job.cancel_requested:
                    async with conn.transaction():
                        await finish_load(conn, job.id, "LOAD_CANCELLED_BY_USER")
                    return True
                deps = await jobs.statuses_of(conn, job.dependencies)
                if any(
                    deps.get(d) not in (*jobs.ACTIVE, "LOAD_COMPLETED") for d in job.dependencies
                ):
                    async with conn.transaction():
                        await finish_load(
                            conn, job.id, "LOAD_FAILED_BECAUSE_DEPENDENCY_NOT_SATISFIED"
                        )
                    return True  # its dependents are settled on the next pass
                if all(deps.get(d) == "LOAD_COMPLETED" for d in job.dependencies):
                    break
            else:
                return False
        await self.run_load(job)
        return True

    async def run_load(self, job: GraphLoad) -> None:
        load_id = job.id
        async with self.pool.acquire() as conn:
            await jobs.start_load(conn, load_id)
        watch = LoadWatch(self.pool, load_id)
        try:
            async with watch.watching():
                status = await self._run_feeds(job, watch)
        except Exception as exc:  # the load ends with a reason, never stays "in progress"
            log.exception("load %s failed unexpectedly", load_id)
            await watch.errors.add(
                FeedError("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}", job.source, 0)
            )
            status = "LOAD_UNEXPECTED_ERROR"
        async with self.pool.acquire() as conn, conn.transaction():
            await watch.errors.flush(conn)
            await finish_load(conn, load_id, status)
        log.info("load %s of %s finished: %s", load_id, job.source, status)

    def feeds_at_once(self, parallelism: str) -> int:
        """Neptune's parallelism, capped so the feeds and the load's own two connections fit
        in the load pool."""
        room = max(1, self.pool.get_max_size() - RESERVED_CONNECTIONS)
        return min(threads_for(parallelism, self.vcpus), room)

    async def _run_feeds(self, job: GraphLoad, watch: LoadWatch) -> str:
        load_id = job.id
        async with self.pool.acquire() as conn:
            planned = await jobs.feeds(conn, load_id)
        if not planned:
            plan = await self._plan(job, watch.errors)
            if plan is None:
                return "LOAD_FAILED"
            async with self.pool.acquire() as conn:
                await jobs.insert_feeds(conn, load_id, [(uri, kind) for uri, kind, _ in plan])
                planned = await jobs.feeds(conn, load_id)
            etags = {uri: etag for uri, _, etag in plan}
        else:  # a load resumed after a restart: its feeds are planned already
            etags = dict(await self._list(job))
        todo = [f for f in planned if f.status in ("LOAD_NOT_STARTED", "LOAD_IN_PROGRESS")]
        started = time.perf_counter()
        semaphore = asyncio.Semaphore(self.feeds_at_once(job.parallelism))

        async def run(feed: Feed) -> str:
            async with semaphore:
                if watch.stop.is_set():
                    return "LOAD_NOT_STARTED"
                status = await self._run_feed(job, feed.uri, etags.get(feed.uri, ""), watch)
                if status != "LOAD_COMPLETED" and job.fail_on_error:
                    watch.stop.set()
                return status

        for kind in ("vertex", "edge", "rdf"):  # every vertex file before any edge file
            group = [f for f in todo if f.kind == kind]
            finished = await self._until_cancelled(load_id, watch, asyncio.gather(*map(run, group)))
            if not finished:
                watch.stop.set()
                await self._mark_interrupted_feeds(load_id)
            if watch.stop.is_set():
                break
        async with self.pool.acquire() as conn:
            await jobs.add_totals(conn, load_id, time.perf_counter() - started, FeedCounts())
            if await jobs.is_cancel_requested(conn, load_id):
                return "LOAD_CANCELLED_BY_USER"
            feeds = await jobs.feeds(conn, load_id)
        if all(f.status == "LOAD_COMPLETED" for f in feeds):
            return "LOAD_COMPLETED"
        return "LOAD_FAILED"

    async def _until_cancelled(
        self, load_id: str, watch: LoadWatch, work: Awaitable[list[str]]
    ) -> bool:
        """Await the feeds; True when they finished, False when a cancel interrupted them
        (they had CANCEL_GRACE_S to stop at a batch boundary first)."""
        task = asyncio.ensure_future(work)
        cancel_seen = asyncio.ensure_future(watch.cancel_seen.wait())
        try:
            await asyncio.wait([task, cancel_seen], return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await asyncio.wait([task], timeout=CANCEL_GRACE_S)
            if task.done():
                task.result()
                return True
            log.warning("load %s: cancelled, interrupting its running feeds", load_id)
            return False
        finally:
            cancel_seen.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _mark_interrupted_feeds(self, load_id: str) -> None:
        async with self.pool.acquire() as conn:
            for feed in await jobs.feeds(conn, load_id):
                if feed.status == "LOAD_IN_PROGRESS":
                    await jobs.finish_feed(
                        conn, load_id, feed.uri, "LOAD_CANCELLED_BY_USER", 0.0, FeedCounts()
                    )

    async def _plan(self, job: GraphLoad, errors: ErrorLog) -> list[tuple[str, str, str]] | None:
        """The feeds to load, as (uri, kind, etag), vertex files first; None if the load
        must not run (RESUME without a previous load)."""
        objects = await self._list(job)
        source = job.source
        if job.mode in ("RESUME", "AUTO"):
            async with self.pool.acquire() as conn:
                previous = await jobs.has_previous_load(conn, source, job.id)
                done = await jobs.loaded_files(conn, source)
            if job.mode == "RESUME" and not previous:
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
            if job.format in ("csv", "opencypher"):
                kind = "vertex" if job.edge_only_load else await self._kind(job, uri)
            plan.append((uri, kind, etag))
        if not job.edge_only_load:
            plan.sort(key=lambda p: p[1] == "edge")  # stable: listing order within a kind
        return plan

    async def _list(self, job: GraphLoad) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=job.bucket, Prefix=job.prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    uri = f"s3://{job.bucket}/{obj['Key']}"
                    found.append((uri, obj["ETag"].strip('"')))
        return found

    async def _kind(self, job: GraphLoad, uri: str) -> str:
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
        return csv_feed.feed_kind(line, job.format)

    def _chunks(self, uri: str) -> Callable[[], AsyncIterator[bytes]]:
        bucket, key = uri.removeprefix("s3://").split("/", 1)

        def open_feed() -> AsyncIterator[bytes]:
            return decompressed(key, objects.s3_chunks(self.s3, bucket, key))

        return open_feed

    async def _run_feed(
        self,
        job: GraphLoad,
        uri: str,
        etag: str,
        watch: LoadWatch,
    ) -> str:
        load_id = job.id
        async with self.pool.acquire() as conn:
            await jobs.start_feed(conn, load_id, uri)
        started = time.perf_counter()
        request = _request_of(job)
        loader = FEED_LOADERS[job.format]
        result = FeedResult()
        try:
            result = await loader(
                self.pool, self._chunks(uri), uri=uri, options=request.options(),
                errors=watch.errors, cancelled=watch.cancelled,
            )  # fmt: skip
            failed = result.stopped_on_error or any(
                (result.counts.parsing_errors, result.counts.datatype_mismatch_errors,
                 result.counts.insert_errors)
            )  # fmt: skip
            status = "LOAD_FAILED" if failed else "LOAD_COMPLETED"
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status, error_code = FAILED_FEED.get(code, ("LOAD_S3_READ_ERROR", "INTERNAL_ERROR"))
            error = FeedError(error_code, f"cannot read {uri}: {code}", uri, 0)  # type: ignore[arg-type]
            await watch.errors.add(error)
        except BotoCoreError as exc:
            status = "LOAD_S3_READ_ERROR"
            await watch.errors.add(FeedError("INTERNAL_ERROR", f"cannot read {uri}: {exc}", uri, 0))
        except UnreadableFile as exc:  # a bomb, a corrupt .gz: the file fails, the rest goes on
            status = "LOAD_FAILED"
            result.counts.parsing_errors += 1
            await watch.errors.add(FeedError("PARSING_ERROR", str(exc), uri, 0))
        if status == "LOAD_COMPLETED" and await watch.cancelled():
            # The loader returned early, or just finished: either way the load was stopped, and
            # RESUME loads the file again (duplicates are counted, never doubled).
            status = "LOAD_CANCELLED_BY_USER"
        seconds = time.perf_counter() - started
        async with self.pool.acquire() as conn, conn.transaction():
            await watch.errors.flush(conn)  # the feed's errors are in its status when it ends
            await jobs.finish_feed(conn, load_id, uri, status, seconds, result.counts)
            await jobs.add_totals(conn, load_id, 0.0, result.counts)
            if status == "LOAD_COMPLETED":
                await jobs.remember_file(conn, job.source, uri, etag, load_id)
        return status


def _request_of(job: GraphLoad) -> LoadRequest:
    parser = job.parser_configuration
    return LoadRequest(
        source=job.source,
        bucket=job.bucket,
        prefix=job.prefix,
        format=job.format,
        iam_role_arn=job.iam_role_arn,
        region=job.region,
        mode=job.mode,
        fail_on_error=job.fail_on_error,
        parallelism=job.parallelism,
        named_graph_uri=parser.get("namedGraphUri") or DEFAULT_NAMED_GRAPH,
        base_uri=parser.get("baseUri") or DEFAULT_BASE_URI,
        allow_empty_strings=parse_bool("allowEmptyStrings", parser.get("allowEmptyStrings"), False),
        update_single_cardinality_properties=job.update_single_cardinality,
        user_provided_edge_ids=job.user_provided_edge_ids,
        edge_only_load=job.edge_only_load,
    )
