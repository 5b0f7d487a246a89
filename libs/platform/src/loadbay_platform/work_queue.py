"""Long work off the poll loop: events whose handling takes long (a load of a 100 GB file) are
queued in a table by the consumer and run by workers, so no handler holds up polling and no
partition is taken away from a replica in the middle of a load.

- **Exactly once.** The consumer writes the job in the inbox transaction of its event (then
  commits the offset); a worker runs the handler in a transaction that also deletes the job,
  holding the job's row lock. Either the effect and the deletion commit together, or neither.
- **Nothing stuck.** A worker that dies (kill -9, a lost host) loses its connection, so
  PostgreSQL ends its transaction and releases the row: any worker of any replica takes the job
  on its next pass (at once when notified, else within `poll_interval_s`). Each start is
  counted; a job that took its process down `max_starts` times is given up, and so is one whose
  handler keeps failing (`LOADBAY_KAFKA__MAX_RETRIES`): the service's dead-letter hook records
  the failed outcome, so the execution someone waits on ends, with the reason.
- **Order.** Jobs of one group (the event's ordering key) run one at a time, oldest first, as
  their events would have on one partition; other groups run side by side (`workers`).
- **Outages** of the database or object store are waited out without limit, like the consumer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping

import asyncpg
import stamina
from pydantic import ValidationError

from loadbay_contracts import Envelope, Event
from loadbay_platform import logs
from loadbay_platform.consumer import MAX_OUTAGE_BACKOFF_S, DeadLetterHook, Handler
from loadbay_platform.errors import TerminalError
from loadbay_platform.metrics import HANDLER_SECONDS, WORK_JOBS, WORK_QUEUED
from loadbay_platform.outages import DATABASE_ERRORS, is_outage, stop_if_cancelled
from loadbay_platform.retries import logged, retrying
from loadbay_platform.settings import WorkSettings
from loadbay_platform.waker import Waker

log = logging.getLogger(__name__)

ENQUEUE = """
INSERT INTO work_queue (event_id, event_type, group_key, envelope)
VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (event_id) DO NOTHING
"""
NOTIFY = "SELECT pg_notify($1, '')"
# The oldest job of each group that no worker holds and this process is not retrying; a new
# start when another process (a restarted one) takes it.
CLAIM = """
UPDATE work_queue
SET starts = starts + (worker IS DISTINCT FROM $1)::int, worker = $1, started_at = now()
WHERE id = (
    SELECT w.id FROM work_queue w
    WHERE w.id <> ALL($2::bigint[]) AND NOT EXISTS (
        SELECT 1 FROM work_queue e WHERE e.group_key = w.group_key AND e.id < w.id
    )
    ORDER BY w.id
    LIMIT 1
    FOR UPDATE OF w SKIP LOCKED
)
RETURNING id, event_type, envelope::text AS envelope, starts
"""
HOLD = "SELECT id FROM work_queue WHERE id = $1 FOR UPDATE SKIP LOCKED"
FINISH = "DELETE FROM work_queue WHERE id = $1"
QUEUED = "SELECT count(*) FROM work_queue"


def channel(service: str) -> str:
    return f"loadbay_work_{service}"


def enqueuer(service: str) -> Handler:
    """The consumer's handler for a long-running event: queue it, in the inbox transaction."""

    async def enqueue(conn: asyncpg.Connection, envelope: Envelope, event: Event) -> None:
        await conn.execute(
            ENQUEUE,
            envelope.id,
            envelope.type,
            f"{envelope.type}:{event.ordering_key()}",
            envelope.model_dump_json(),
        )
        await conn.execute(NOTIFY, channel(service))

    return enqueue


class WorkQueue:
    """Runs queued long work with `settings.workers` workers until cancelled.

    Connections are acquired without a timeout: asyncpg's timed acquire goes through
    `asyncio.wait_for`, which on Python 3.11 can lose an acquired connection when the task is
    cancelled at that moment (seen as a pool that never closed); a worker can simply wait."""

    def __init__(
        self,
        *,
        service: str,
        pool: asyncpg.Pool,
        handlers: Mapping[type[Event], Handler],
        dead_letter_hooks: Mapping[type[Event], DeadLetterHook],
        settings: WorkSettings,
        max_retries: int,
        retry_backoff_s: float = 0.5,
    ) -> None:
        self.service = service
        self.pool = pool
        self.handlers = {cls.TYPE: (cls, h) for cls, h in handlers.items()}
        self.hooks = {cls.TYPE: h for cls, h in dead_letter_hooks.items()}
        self.settings = settings
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        # Who runs a job: a job taken again by the same process after an outage is no new start.
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._mine: set[int] = set()  # jobs this process holds or is retrying

    async def run(self) -> None:
        waker = Waker(self.pool, channel(self.service))
        try:
            await waker.listen()  # before the first look: a job queued meanwhile wakes a worker
            await asyncio.gather(*(self._worker(waker) for _ in range(self.settings.workers)))
        finally:
            await waker.close()

    async def _worker(self, waker: Waker) -> None:
        while True:
            # A worker never ends on its own: a failure (of a claim, or of the wait, whose
            # LISTEN needs the database) is logged and waited out, and the wait starts again
            # from retry_backoff_s once a round goes through.
            async for attempt in retrying(
                self._log_worker_failure, initial_s=self.retry_backoff_s, max_s=MAX_OUTAGE_BACKOFF_S
            ):
                with attempt:
                    if await self.run_next():
                        waker.wake()  # the job may have been holding up the next of its group
                    else:
                        await waker.wait(self.settings.poll_interval_s)

    def _log_worker_failure(self, exc: Exception) -> bool:
        stop_if_cancelled(exc)
        if isinstance(exc, DATABASE_ERRORS):
            log.warning("work queue of %s: %r; retrying with backoff", self.service, exc)
        else:
            log.error("work queue of %s failed; retrying with backoff", self.service, exc_info=exc)
        return True

    async def run_next(self) -> bool:
        """Claim the next job and run it to a durable end; False when there is none."""
        async with self.pool.acquire() as conn:
            job = await conn.fetchrow(CLAIM, self.worker_id, list(self._mine))
            WORK_QUEUED.labels(self.service).set(await conn.fetchval(QUEUED))
        if job is None:
            return False
        self._mine.add(job["id"])
        envelope = Envelope.model_validate_json(job["envelope"])
        token = logs.correlation_id.set(envelope.correlationid)
        try:
            try:
                cls, handler = self.handlers[envelope.type]
                event = cls.model_validate(envelope.data)
            except (KeyError, ValidationError) as exc:
                # Queued by another version of the service: nothing here can run it.
                await self._give_up(job["id"], envelope, None, f"cannot run {envelope.type}: {exc}")
                return True
            if job["starts"] > self.settings.max_starts:
                reason = (
                    f"the {self.service} service stopped {job['starts'] - 1} times while"
                    f" handling this {envelope.type} (LOADBAY_WORK__MAX_STARTS="
                    f"{self.settings.max_starts}): it is failed rather than started again"
                )
                await self._give_up(job["id"], envelope, event, reason)
            else:
                await self._run(job["id"], envelope, event, handler)
        finally:
            self._mine.discard(job["id"])
            logs.correlation_id.reset(token)
        return True

    async def _run(self, job_id: int, envelope: Envelope, event: Event, handler: Handler) -> None:
        """Hold the job (its row lock) and run the handler until it succeeds or is given up,
        all in one transaction; an outage ends the transaction and is waited out."""
        async for attempt in self._through_outages():
            with attempt:
                async with (
                    self.pool.acquire() as conn,
                    conn.transaction(),
                ):
                    if await conn.fetchval(HOLD, job_id) is None:
                        return  # finished, or taken over by another replica meanwhile
                    reason = await self._attempts(conn, envelope, event, handler)
                    if reason is not None:
                        await self._record_failure(conn, envelope, event, reason)
                    await conn.execute(FINISH, job_id)
                WORK_JOBS.labels(
                    self.service, envelope.type, "given_up" if reason else "done"
                ).inc()

    def _through_outages(self) -> AsyncIterator[stamina.Attempt]:
        """Retry while a dependency is unavailable, for as long as it takes; anything else
        propagates."""
        return retrying(
            logged(_outage, log, lambda _: "infrastructure unavailable"),
            initial_s=self.retry_backoff_s,
            max_s=MAX_OUTAGE_BACKOFF_S,
        )

    async def _attempts(
        self, conn: asyncpg.Connection, envelope: Envelope, event: Event, handler: Handler
    ) -> str | None:
        """Run the handler, each attempt in a savepoint, up to `max_retries` times; None when
        it succeeded, else why it was given up. Outages propagate (waited out by the caller)."""
        attempts = retrying(
            logged(_handler_failure, log, lambda _: f"{envelope.type} failed"),
            initial_s=self.retry_backoff_s,
            max_s=MAX_OUTAGE_BACKOFF_S,
            attempts=self.max_retries,
        )
        try:
            async for attempt in attempts:
                with attempt:
                    started = time.perf_counter()
                    async with conn.transaction():
                        await handler(conn, envelope, event)
                    HANDLER_SECONDS.labels(self.service, envelope.type).observe(
                        time.perf_counter() - started
                    )
        except TerminalError as exc:
            return str(exc)
        except Exception as exc:
            if is_outage(exc):
                raise
            log.exception("giving up on %s after %d attempts", envelope.type, self.max_retries)
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _give_up(
        self, job_id: int, envelope: Envelope, event: Event | None, reason: str
    ) -> None:
        """Drop the job without running it, recording the failed outcome in the same
        transaction."""
        async for attempt in self._through_outages():
            with attempt:
                async with (
                    self.pool.acquire() as conn,
                    conn.transaction(),
                ):
                    if await conn.fetchval(HOLD, job_id) is None:
                        return
                    if event is not None:
                        await self._record_failure(conn, envelope, event, reason)
                    else:
                        log.error("dropped %s %s: %s", envelope.type, envelope.id, reason)
                    await conn.execute(FINISH, job_id)
                WORK_JOBS.labels(self.service, envelope.type, "given_up").inc()

    async def _record_failure(
        self, conn: asyncpg.Connection, envelope: Envelope, event: Event, reason: str
    ) -> None:
        """The service's dead-letter hook writes the failed outcome someone waits on."""
        log.error("gave up on %s %s: %s", envelope.type, envelope.id, reason)
        hook = self.hooks.get(envelope.type)
        if hook is None:
            return
        try:
            async with conn.transaction():
                await hook(conn, envelope, event, reason)
        except Exception as exc:
            stop_if_cancelled(exc)
            if is_outage(exc):
                raise
            # A hook that cannot run must not keep the job (and its group) for ever.
            log.exception("the dead-letter hook of %s failed", envelope.type)


def _not_cancelled(exc: Exception) -> bool:
    """Retry any error, unless the task is being cancelled (see stop_if_cancelled)."""
    stop_if_cancelled(exc)
    return True


def _outage(exc: Exception) -> bool:
    return _not_cancelled(exc) and is_outage(exc)


def _handler_failure(exc: Exception) -> bool:
    """A handler's failure is retried; a terminal one or an outage (waited out by the caller)
    is not."""
    return _not_cancelled(exc) and not is_outage(exc) and not isinstance(exc, TerminalError)
