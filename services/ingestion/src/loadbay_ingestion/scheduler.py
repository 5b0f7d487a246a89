"""Cron schedules of type DataIngestion. A due schedule fires once, whichever replica sees it
first: its row is locked (`FOR UPDATE SKIP LOCKED`) and advanced in the same transaction as the
run is queued."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from croniter import croniter

from loadbay_ingestion import repository, runs
from loadbay_platform.errors import ApiError, Conflict

log = logging.getLogger(__name__)


def next_time(cron: str, after: datetime | None = None) -> datetime:
    if not croniter.is_valid(cron) or len(cron.split()) != 5:
        raise ApiError(f"not a cron expression: {cron!r} (five fields, UTC, e.g. '0 12 * * *')")
    nxt: datetime = croniter(cron, after or datetime.now(UTC)).get_next(datetime)
    return nxt


async def fire_due(pool: asyncpg.Pool) -> int:
    """Queue a run for every due schedule; returns how many this call queued."""
    fired = 0
    async with pool.acquire() as conn, conn.transaction():
        for schedule in await repository.due_schedules(conn):
            await repository.advance_schedule(conn, schedule.binding_id, next_time(schedule.cron))
            binding = await repository.binding_by_id(conn, schedule.binding_id)
            if binding is None:
                continue
            try:
                async with conn.transaction():
                    await runs.queue_run(conn, binding, "schedule", "schedule")
                fired += 1
            except Conflict:
                log.info("schedule of %s skipped: a run is queued or running", binding.dataset)
    return fired


async def run_scheduler(
    pool: asyncpg.Pool, interval_s: float, on_fired: Callable[[], None]
) -> None:
    while True:
        try:
            if await fire_due(pool):
                on_fired()
        except Exception:  # a failed tick is retried at the next one
            log.exception("ingestion scheduler tick failed")
        await asyncio.sleep(interval_s)
