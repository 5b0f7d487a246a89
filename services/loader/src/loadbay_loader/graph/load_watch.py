"""What a running load's feeds learn and report without a second connection.

A feed holds one connection for as long as it loads. If it also took a connection to ask
whether the load was cancelled, or to log an error, feeds could each hold one and wait for
another, and with as many feeds as the pool has connections they would wait for ever. So a
feed only looks at an event (`cancelled()`) and appends to a list (`ErrorLog.add`); one
watcher task per load, with a connection of its own for a moment every `poll_s`, writes the
errors and looks for a cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from loadbay_loader.graph import loads_store as jobs
from loadbay_loader.graph.feeds import FeedError
from loadbay_platform.outages import DATABASE_ERRORS

log = logging.getLogger(__name__)

# How often the watcher looks for a cancel and writes errors; the API shows errors this late.
POLL_S = 0.5


class ErrorLog:
    """A load's errors on their way to its error log (an ErrorSink). Only the first
    ERRORS_PER_LOAD are kept, as in the log itself; the others are only counted, so memory
    stays bounded whatever a file holds."""

    def __init__(self, load_id: str) -> None:
        self.load_id = load_id
        self._pending: list[FeedError] = []
        self._uncounted = 0  # errors past the kept ones, not yet counted in the log
        self._seen = 0

    async def add(self, error: FeedError) -> None:
        self._seen += 1
        if self._seen <= jobs.ERRORS_PER_LOAD:
            self._pending.append(error)
        else:
            self._uncounted += 1

    async def flush(self, conn: asyncpg.Connection) -> None:
        """Write what was added so far; what is added meanwhile waits for the next flush."""
        pending, uncounted = list(self._pending), self._uncounted
        if not pending and not uncounted:
            return
        async with conn.transaction():
            await jobs.add_errors(
                conn,
                self.load_id,
                [(e.code, e.message, e.file_name, e.record_num) for e in pending],
            )
            if uncounted:
                await jobs.count_more_errors(conn, self.load_id, uncounted)
        del self._pending[: len(pending)]
        self._uncounted -= uncounted


class LoadWatch:
    """One running load's stop signal and error log, kept by one watcher task."""

    def __init__(self, pool: asyncpg.Pool, load_id: str, poll_s: float = POLL_S) -> None:
        self.pool = pool
        self.load_id = load_id
        self.poll_s = poll_s
        self.errors = ErrorLog(load_id)
        self.stop = asyncio.Event()  # the feeds stop at their next batch
        self.cancel_seen = asyncio.Event()  # because the user cancelled the load

    async def cancelled(self) -> bool:
        """What feeds ask between batches: no connection, no wait."""
        return self.stop.is_set()

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[LoadWatch]:
        task = asyncio.create_task(self._watch())
        try:
            yield self
        finally:
            task.cancel()
            await asyncio.wait([task])

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                async with self.pool.acquire() as conn:
                    await self.errors.flush(conn)
                    if await jobs.is_cancel_requested(conn, self.load_id):
                        self.cancel_seen.set()
                        self.stop.set()
            except DATABASE_ERRORS as exc:  # the feeds meet the outage too; errors wait
                log.warning("load %s: cannot look for a cancel now: %r", self.load_id, exc)
