"""Cron schedules of distribution runs. A due schedule fires once, whichever replica sees it
first (its row is locked and advanced in the same transaction as the run's start)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg
from croniter import croniter

from loadbay_distribution import repository, runs
from loadbay_platform.errors import ApiError, Conflict
from loadbay_platform.s3 import ObjectStore

log = logging.getLogger(__name__)


def next_time(cron: str, after: datetime | None = None) -> datetime:
    if not croniter.is_valid(cron):
        raise ApiError(f"not a cron expression: {cron!r} (five fields, e.g. '30 12 * * *')")
    start = after or datetime.now(UTC)
    nxt: datetime = croniter(cron, start).get_next(datetime)
    return nxt


async def fire_due(pool: asyncpg.Pool, s3: ObjectStore) -> int:
    fired = 0
    async with pool.acquire() as conn, conn.transaction():
        for schedule in await repository.due_schedules(conn):
            product = await repository.product_by_id(conn, schedule.data_product_id)
            await repository.advance_schedule(
                conn, schedule.data_product_id, next_time(schedule.cron)
            )
            if product is None:
                continue
            try:
                async with conn.transaction():
                    await runs.start_run(conn, s3, product, "schedule", "schedule")
                fired += 1
            except Conflict:
                log.info("schedule of %s skipped: a run is in progress", product.name)
    return fired


async def run_scheduler(pool: asyncpg.Pool, s3: ObjectStore, interval_s: float) -> None:
    while True:
        try:
            await fire_due(pool, s3)
        except Exception:  # a failed tick is retried at the next one
            log.exception("scheduler tick failed")
        await asyncio.sleep(interval_s)
