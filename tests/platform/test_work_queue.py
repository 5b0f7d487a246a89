"""Long work off the poll loop: a queued job runs once, in order within its group, is taken
again when its worker dies, and is failed with the reason (once) when it cannot finish."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from loadbay_contracts import Envelope, FileLanded
from loadbay_platform.db import close_pool, create_pool, migrate
from loadbay_platform.settings import PostgresSettings, WorkSettings
from loadbay_platform.work_queue import WorkQueue, enqueuer
from tests.conftest import StackInfo, eventually

Handler = Callable[[asyncpg.Connection, Envelope, Any], Awaitable[None]]


@pytest.fixture
async def pool(stack: StackInfo) -> AsyncIterator[asyncpg.Pool]:
    schema = f"loadbay_wq_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(stack.postgres_url)
    try:
        await migrate(conn, schema, "loadbay_notifier")
        await conn.execute(f"CREATE TABLE {schema}.effects (event_id text, key text)")
    finally:
        await conn.close()
    created = await create_pool(PostgresSettings(url=stack.postgres_url), schema)
    try:
        yield created
    finally:
        await created.execute(f"DROP SCHEMA {schema} CASCADE")
        await close_pool(created)


def landed(dataset: str, name: str) -> tuple[Envelope, FileLanded]:
    event = FileLanded(bucket="lz", key=f"d/{dataset}/upload_date=1/u/csv/{name}", size=1, etag="e")
    return Envelope.wrap(event, source="test"), event


async def enqueue(pool: asyncpg.Pool, envelope: Envelope, event: FileLanded) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await enqueuer("test")(conn, envelope, event)


async def record_effect(conn: asyncpg.Connection, envelope: Envelope, event: Any) -> None:
    await conn.execute("INSERT INTO effects VALUES ($1, $2)", envelope.id, event.key)


@contextlib.asynccontextmanager
async def running(
    pool: asyncpg.Pool,
    handler: Handler,
    hook: Callable[[asyncpg.Connection, Envelope, Any, str], Awaitable[None]] | None = None,
    **settings: Any,
) -> AsyncIterator[WorkQueue]:
    queue = WorkQueue(
        service="test",
        pool=pool,
        handlers={FileLanded: handler},
        dead_letter_hooks={FileLanded: hook} if hook else {},
        settings=WorkSettings(**{"poll_interval_s": 0.2, **settings}),
        max_retries=2,
        retry_backoff_s=0.01,
    )
    task = asyncio.create_task(queue.run())
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def effects(pool: asyncpg.Pool) -> list[str]:
    return [r["key"] for r in await pool.fetch("SELECT key FROM effects ORDER BY key")]


async def queued(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM work_queue"))


async def test_a_queued_job_runs_once_and_leaves_the_queue(pool: asyncpg.Pool) -> None:
    envelope, event = landed("a", "one.csv")
    await enqueue(pool, envelope, event)
    await enqueue(pool, envelope, event)  # a redelivery that got past the inbox: still one job
    async with running(pool, record_effect):
        await eventually(lambda: _empty(pool))
    assert await effects(pool) == [event.key]


async def test_jobs_of_one_group_run_one_at_a_time_in_order(pool: asyncpg.Pool) -> None:
    started: list[str] = []
    busy: set[str] = set()
    overlaps: list[str] = []

    async def slow(conn: asyncpg.Connection, envelope: Envelope, event: Any) -> None:
        group = event.ordering_key()
        if group in busy:
            overlaps.append(event.key)
        busy.add(group)
        started.append(event.key)
        await asyncio.sleep(0.05)
        await record_effect(conn, envelope, event)
        busy.discard(group)

    for name in ("1.csv", "2.csv", "3.csv"):
        await enqueue(pool, *landed("a", name))
        await enqueue(pool, *landed("b", name))
    async with running(pool, slow, workers=3):
        await eventually(lambda: _empty(pool))
    assert overlaps == []
    for dataset in ("a", "b"):
        mine = [k.rsplit("/", 1)[1] for k in started if f"/{dataset}/" in k]
        assert mine == ["1.csv", "2.csv", "3.csv"]
    assert len(await effects(pool)) == 6


async def test_a_job_whose_worker_died_is_taken_again(pool: asyncpg.Pool) -> None:
    envelope, event = landed("a", "big.csv")
    await enqueue(pool, envelope, event)
    first_backend: list[int] = []
    never = asyncio.Event()

    async def hangs(conn: asyncpg.Connection, envelope: Envelope, event: Any) -> None:
        first_backend.append(await conn.fetchval("SELECT pg_backend_pid()"))
        await never.wait()

    async with running(pool, hangs):
        await eventually(lambda: _true(bool(first_backend)))
        # The worker's process dies: PostgreSQL ends its session and its transaction.
        await pool.execute("SELECT pg_terminate_backend($1)", first_backend[0])
    async with running(pool, record_effect):
        await eventually(lambda: _empty(pool))
    assert await effects(pool) == [event.key]


async def test_a_job_that_keeps_taking_its_process_down_is_failed_with_the_reason(
    pool: asyncpg.Pool,
) -> None:
    envelope, event = landed("a", "crashes.csv")
    await enqueue(pool, envelope, event)
    await pool.execute("UPDATE work_queue SET starts = 3")  # three starts that never finished
    reasons: list[str] = []

    async def hook(conn: asyncpg.Connection, envelope: Envelope, event: Any, reason: str) -> None:
        reasons.append(reason)
        await conn.execute("INSERT INTO effects VALUES ($1, 'failed')", envelope.id)

    async with running(pool, record_effect, hook, max_starts=3):
        await eventually(lambda: _empty(pool))
    assert await effects(pool) == ["failed"]  # failed, not run a fourth time
    assert len(reasons) == 1
    assert "stopped 3 times" in reasons[0]
    assert "LOADBAY_WORK__MAX_STARTS=3" in reasons[0]


async def test_a_failing_job_is_retried_then_failed_once_with_the_reason(
    pool: asyncpg.Pool,
) -> None:
    envelope, event = landed("a", "bug.csv")
    await enqueue(pool, envelope, event)
    calls: list[str] = []
    reasons: list[str] = []

    async def broken(conn: asyncpg.Connection, envelope: Envelope, event: Any) -> None:
        calls.append(envelope.id)
        await record_effect(conn, envelope, event)  # rolled back with the failure
        raise RuntimeError("a bug")

    async def hook(conn: asyncpg.Connection, envelope: Envelope, event: Any, reason: str) -> None:
        reasons.append(reason)

    async with running(pool, broken, hook):
        await eventually(lambda: _empty(pool))
    assert len(calls) == 2  # max_retries
    assert reasons == ["RuntimeError: a bug"]
    assert await effects(pool) == []


async def test_an_outage_is_waited_out_past_the_retry_limit(pool: asyncpg.Pool) -> None:
    envelope, event = landed("a", "outage.csv")
    await enqueue(pool, envelope, event)
    outages = [asyncpg.ConnectionDoesNotExistError("gone") for _ in range(4)]

    async def flaky(conn: asyncpg.Connection, envelope: Envelope, event: Any) -> None:
        if outages:
            raise outages.pop()
        await record_effect(conn, envelope, event)

    async def hook(conn: asyncpg.Connection, envelope: Envelope, event: Any, reason: str) -> None:
        raise AssertionError(f"an outage failed the job: {reason}")

    # Other workers leave a job alone while its worker waits an outage out: no new start.
    async with running(pool, flaky, hook, workers=3, max_starts=1):
        await eventually(lambda: _empty(pool))
    assert await effects(pool) == [event.key]


async def _empty(pool: asyncpg.Pool) -> bool:
    return await queued(pool) == 0


async def _true(value: bool) -> bool:
    return value
