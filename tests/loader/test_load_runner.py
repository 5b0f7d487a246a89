"""The bulk-load runner on a pool of its own: feeds never hold a connection while they wait for
another (cancel checks and error logging go through the load's watcher), so any parallelism
fits any pool; and the error log stays bounded in memory. Real PostgreSQL and S3."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from loadbay_loader.graph import load_runner, loads_store
from loadbay_loader.graph.feeds import FeedError
from loadbay_loader.graph.load_watch import ErrorLog
from loadbay_loader.settings import LoaderSettings
from loadbay_platform.db import create_pool
from loadbay_platform.s3 import s3_client
from loadbay_platform.settings import PlatformSettings, PostgresSettings
from tests.conftest import eventually
from tests.loader.test_neptune_api import ROLE, SOURCE_BUCKET, TERMINAL, source_bucket

__all__ = ["source_bucket"]  # the fixture, used by name


async def queue_load(
    pool: asyncpg.Pool, settings: PlatformSettings, prefix: str, *, fail_on_error: bool
) -> str:
    """A load as the API admits it (the runner under test, not the session's, runs it)."""
    load_id = str(uuid.uuid4())
    await pool.execute(
        """INSERT INTO graph_loads (id, source, bucket, prefix, format, mode, fail_on_error,
            parallelism, parser_configuration, update_single_cardinality, queue_request,
            edge_only_load, dependencies, region, iam_role_arn, status)
           VALUES ($1, $2, $3, $4, 'csv', 'NEW', $5, 'HIGH', '{}', false, false, false, '{}',
            $6, $7, 'LOAD_NOT_STARTED')""",
        load_id, f"s3://{SOURCE_BUCKET}/{prefix}", SOURCE_BUCKET, prefix, fail_on_error,
        settings.s3.region, ROLE,
    )  # fmt: skip
    return load_id


@pytest.mark.usefixtures("source_bucket")
async def test_feeds_on_a_small_pool_never_wait_on_each_other(
    pool: asyncpg.Pool, pg_url: str, settings: PlatformSettings, s3: Any
) -> None:
    """Parallelism HIGH on 16 vCPUs, a load pool of 3 connections, six files that each log
    errors: before, each feed held a connection and took a second one to log an error or look
    for a cancel, and the feeds waited on each other for ever."""
    prefix = f"runner/{uuid.uuid4().hex[:8]}/"
    for n in range(6):
        rows = "".join(f"f{n}v{i},p,{'x' if i % 2 else i}\n" for i in range(6))
        s3.put_object(
            Bucket=SOURCE_BUCKET, Key=f"{prefix}v{n}.csv", Body=f"~id,~label,n:Int\n{rows}".encode()
        )
    load_id = await queue_load(pool, settings, prefix, fail_on_error=False)
    loader_settings = LoaderSettings(vcpus=16, graph_pool_size=3)
    small = await create_pool(PostgresSettings(url=pg_url, pool_max_size=3), "loadbay_loader")
    async with s3_client(settings.s3) as client:
        runner = load_runner.Worker(small, client, loader_settings, poll_interval_s=0.1)
        assert runner.feeds_at_once("HIGH") == 1  # 3 connections, 2 of them the load's own
        task = asyncio.create_task(runner.run())
        try:

            async def finished() -> bool:
                status = await pool.fetchval(
                    "SELECT status FROM graph_loads WHERE id = $1", load_id
                )
                return status in TERMINAL

            await eventually(finished, within=120)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await small.close()
    row = await pool.fetchrow("SELECT * FROM graph_loads WHERE id = $1", load_id)
    assert row is not None
    assert row["status"] == "LOAD_FAILED"  # every file has values that are not Int
    assert row["error_count"] == 18 and row["datatype_mismatch_errors"] == 18
    logged = await pool.fetch("SELECT file_name FROM graph_load_errors WHERE load_id = $1", load_id)
    assert sorted({r["file_name"] for r in logged}) == [
        f"s3://{SOURCE_BUCKET}/{prefix}v{n}.csv" for n in range(6)
    ]
    assert len(logged) == 18
    assert await pool.fetchval("SELECT count(*) FROM graph_vertices WHERE id LIKE 'f%v%'") >= 18


async def test_the_error_log_keeps_the_first_errors_and_counts_the_rest(
    pool: asyncpg.Pool, settings: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loads_store, "ERRORS_PER_LOAD", 5)
    load_id = await queue_load(pool, settings, "nowhere/", fail_on_error=False)
    errors = ErrorLog(load_id)
    for record in range(1, 9):
        await errors.add(FeedError("PARSING_ERROR", f"bad {record}", "s3://b/f.csv", record))
    async with pool.acquire() as conn:
        await errors.flush(conn)
        await errors.add(FeedError("PARSING_ERROR", "bad 9", "s3://b/f.csv", 9))
        await errors.flush(conn)
        await errors.flush(conn)  # nothing new: nothing written, nothing counted twice
        kept = await loads_store.errors_page(conn, load_id, 0, 100)
        count = await conn.fetchval("SELECT error_count FROM graph_loads WHERE id = $1", load_id)
    assert [e.record_num for e in kept] == [1, 2, 3, 4, 5]
    assert count == 9
