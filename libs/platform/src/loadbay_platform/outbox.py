"""Transactional outbox: events are written in the same transaction as the state change that
causes them, and a relay publishes them to Kafka afterwards (at least once, in id order), on
the service's faststream broker."""

from __future__ import annotations

import asyncio
import logging
import zlib

import asyncpg
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from loadbay_contracts import Envelope, Event
from loadbay_platform import logs
from loadbay_platform.liveness import Liveness
from loadbay_platform.metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG
from loadbay_platform.outages import DATABASE_ERRORS
from loadbay_platform.retries import retrying
from loadbay_platform.waker import Waker

log = logging.getLogger(__name__)
RELAY_ERRORS = (*DATABASE_ERRORS, KafkaError)

INSERT_OUTBOX = "INSERT INTO outbox (topic, key, envelope) VALUES ($1, $2, $3::jsonb)"
NOTIFY = "SELECT pg_notify($1, '')"
TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
PENDING = "SELECT id, topic, key, envelope::text AS envelope FROM outbox ORDER BY id LIMIT $1"
DELETE_SENT = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
BACKLOG = "SELECT count(*) FROM outbox"


def channel(service: str) -> str:
    return f"loadbay_outbox_{service}"


async def enqueue(
    conn: asyncpg.Connection,
    event: Event,
    *,
    service: str,
    correlation_id: str | None = None,
    subject: str | None = None,
) -> Envelope:
    """Write `event` to the outbox in the caller's transaction."""
    envelope = Envelope.wrap(
        event,
        source=f"loadbay/{service}",
        correlation_id=correlation_id or logs.correlation_id.get(),
        subject=subject,
    )
    await conn.execute(
        INSERT_OUTBOX, event.topic(), event.ordering_key(), envelope.model_dump_json()
    )
    await conn.execute(NOTIFY, channel(service))
    return envelope


class OutboxRelay:
    """Publishes outbox rows to Kafka, then deletes them. One relay at a time per service
    publishes (an advisory lock), so replicas keep the order."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: KafkaBroker,
        service: str,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        acquire_timeout_s: float = 30.0,
        liveness: Liveness | None = None,
    ) -> None:
        self.acquire_timeout_s = acquire_timeout_s
        self.liveness = liveness or Liveness()
        self.pool = pool
        self.broker = broker
        self.service = service
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self._lock_key = zlib.crc32(f"outbox:{service}".encode())

    async def run(self) -> None:
        """Publish until cancelled; outages of the database or the broker are waited out (with
        jittered backoff, up to the poll interval), the backlog kept in order."""
        waker = Waker(self.pool, channel(self.service))
        try:
            await waker.listen()  # before the first look: an event written meanwhile wakes it
            while True:
                sent = await self._publish_retrying()
                if sent < self.batch_size:
                    await waker.wait(self.poll_interval_s)
        finally:
            await waker.close()

    async def _publish_retrying(self) -> int:
        async for attempt in retrying(RELAY_ERRORS, initial_s=0.1, max_s=self.poll_interval_s):
            with attempt:
                self.liveness.turn("the outbox relay")
                if attempt.num > 1:
                    log.warning("outbox relay: publishing again (attempt %d)", attempt.num)
                return await self.publish_pending()
        raise AssertionError("retries without limit ended")  # pragma: no cover

    async def publish_pending(self) -> int:
        async with self.pool.acquire(timeout=self.acquire_timeout_s) as conn, conn.transaction():
            if not await conn.fetchval(TRY_LOCK, self._lock_key):
                return 0
            rows = await conn.fetch(PENDING, self.batch_size)
            if not rows:
                OUTBOX_BACKLOG.labels(self.service).set(0)
                return 0
            # Sent together, confirmed together: one round trip per batch, not per event.
            futures = [
                await self.broker.publish(
                    r["envelope"].encode(), r["topic"], key=r["key"].encode(), no_confirm=True
                )
                for r in rows
            ]
            await asyncio.gather(*futures)
            await conn.execute(DELETE_SENT, [r["id"] for r in rows])
            for r in rows:
                EVENTS_PUBLISHED.labels(self.service, r["topic"]).inc()
            OUTBOX_BACKLOG.labels(self.service).set(await conn.fetchval(BACKLOG))
            return len(rows)
