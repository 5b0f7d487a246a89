"""The event consumer every service runs: decode, check version, handle exactly once, commit.

- Each event's effect and its inbox row (the handled event id) are written in one transaction,
  so a redelivered event changes nothing.
- Offsets are committed only after that transaction commits.
- An event that cannot be decoded, has an unknown type or major version, or keeps failing after
  bounded retries goes to `<topic>.dlq` with the reason in its headers; then its offset is
  committed, so one poison message never blocks a partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pydantic import ValidationError

from loadbay_contracts import Envelope, Event, dead_letter_topic
from loadbay_platform import logs
from loadbay_platform.errors import TerminalError
from loadbay_platform.liveness import Liveness
from loadbay_platform.metrics import CONSUMER_LAG, EVENTS_CONSUMED, HANDLER_SECONDS
from loadbay_platform.outages import is_outage, stop_if_cancelled
from loadbay_platform.settings import KafkaSettings

log = logging.getLogger(__name__)

Handler = Callable[[asyncpg.Connection, Envelope, Any], Awaitable[None]]
# For topics that carry someone else's format (e.g. S3 event notifications): gets the raw value.
RawHandler = Callable[[asyncpg.Connection, bytes], Awaitable[None]]
# Run (once, in its own transaction) after a valid event was dead-lettered, with the reason:
# where the event asked for work someone waits on, it records a failed outcome, so that every
# execution reaches a terminal state even when its request could not be handled.
DeadLetterHook = Callable[[asyncpg.Connection, Envelope, Any, str], Awaitable[None]]

MAX_OUTAGE_BACKOFF_S = 30.0

RECORD_HANDLED = (
    "INSERT INTO inbox (event_id, consumer, topic) VALUES ($1, $2, $3)"
    " ON CONFLICT DO NOTHING RETURNING true"
)


class Consumer:
    def __init__(
        self,
        *,
        service: str,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        kafka: KafkaSettings,
        handlers: Mapping[type[Event], Handler],
        raw_handlers: Mapping[str, RawHandler] | None = None,
        dead_letter_hooks: Mapping[type[Event], DeadLetterHook] | None = None,
        group_id: str | None = None,
        retry_backoff_s: float = 0.5,
        acquire_timeout_s: float = 30.0,
        liveness: Liveness | None = None,
    ) -> None:
        self.service = service
        self.pool = pool
        self.producer = producer
        self.kafka = kafka
        self.handlers = {cls.TYPE: (cls, h) for cls, h in handlers.items()}
        self.raw_handlers = dict(raw_handlers or {})
        self.dead_letter_hooks = {cls.TYPE: h for cls, h in (dead_letter_hooks or {}).items()}
        self.topics = sorted({cls.topic() for cls in handlers} | set(self.raw_handlers))
        self.group_id = group_id or f"loadbay-{service}"
        self.retry_backoff_s = retry_backoff_s
        self.acquire_timeout_s = acquire_timeout_s
        self.liveness = liveness or Liveness()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.kafka.bootstrap_servers,
            security_protocol=self.kafka.security_protocol,
            group_id=self.group_id,
            enable_auto_commit=False,
            # Tansu reports wrong end offsets, so never start at "latest".
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.kafka.fetch_max_wait_ms,
            max_poll_interval_ms=self.kafka.max_poll_interval_ms,
        )
        await consumer.start()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=50)
                self.liveness.turn("the event consumer")
                # Ready once polling works, with or without partitions: a replica beyond the
                # partition count is a healthy standby, not a stalled rollout.
                self.ready.set()
                for tp, records in batch.items():
                    for record in records:
                        if tp not in consumer.assignment():
                            break  # taken away meanwhile: its new owner reads these again
                        await self.process(record)
                        try:
                            await consumer.commit({tp: record.offset + 1})
                        except (CommitFailedError, IllegalStateError) as exc:
                            # The effect is durable; the new owner finds it in the inbox.
                            log.warning("%s moved to another replica (%r)", tp, exc)
                            break
                    self._report_lag(consumer, tp, records[-1].offset)
        finally:
            await consumer.stop()

    def _report_lag(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        highwater = consumer.highwater(tp)
        if highwater is not None:
            CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(
                max(highwater - offset - 1, 0)
            )

    async def process(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Handle one record to a durable outcome: handled, duplicate or dead-lettered."""
        topic = record.topic
        if topic in self.raw_handlers:
            await self._process_raw(record, self.raw_handlers[topic])
            return
        try:
            envelope, cls, handler = self._decode(record)
        except TerminalError as exc:
            await self._dead_letter(record, str(exc))
            return
        token = logs.correlation_id.set(envelope.correlationid)
        try:
            event = cls.model_validate(envelope.data)
        except ValidationError as exc:
            await self._dead_letter(record, f"invalid {envelope.type} data: {exc}")
            return
        try:

            async def attempt() -> str:
                return await self._handle_once(topic, envelope, event, handler)

            started = time.perf_counter()
            _, reason = await self._with_retries(record, attempt)
            if reason is None:
                HANDLER_SECONDS.labels(self.service, envelope.type).observe(
                    time.perf_counter() - started
                )
            elif envelope.type in self.dead_letter_hooks:
                await self._after_dead_letter(topic, envelope, event, reason)
        finally:
            logs.correlation_id.reset(token)

    async def _with_retries(
        self, record: ConsumerRecord[bytes, bytes], attempt: Callable[[], Awaitable[str]]
    ) -> tuple[str, str | None]:
        """Run `attempt` until it has a durable outcome: (outcome, None), or ("dead_lettered",
        the reason).

        The database or network being unavailable is no fault of the event: that is retried
        without limit (capped backoff), so an outage never dead-letters good events. A failure
        of the handler itself is retried `max_retries` times, then dead-lettered; a
        TerminalError is dead-lettered at once."""
        failures = 0
        outages = 0
        while True:
            try:
                outcome = await attempt()
            except TerminalError as exc:
                await self._dead_letter(record, str(exc))
                return "dead_lettered", str(exc)
            except Exception as exc:
                stop_if_cancelled(exc)
                if is_outage(exc):  # no fault of the event: wait it out, without limit
                    outages += 1
                    delay = min(self.retry_backoff_s * 2 ** min(outages, 10), MAX_OUTAGE_BACKOFF_S)
                    log.warning("infrastructure unavailable (%r); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                # the handler failed: bounded retries, then the DLQ
                failures += 1
                if failures >= self.kafka.max_retries:
                    log.exception(
                        "giving up on a message of %s after %d attempts", record.topic, failures
                    )
                    reason = f"{type(exc).__name__}: {exc}"
                    await self._dead_letter(record, reason)
                    return "dead_lettered", reason
                EVENTS_CONSUMED.labels(self.service, record.topic, "retried").inc()
                log.warning("handling failed (attempt %d): %r", failures, exc)
                await asyncio.sleep(self.retry_backoff_s * 2 ** (failures - 1))
                continue
            EVENTS_CONSUMED.labels(self.service, record.topic, outcome).inc()
            return outcome, None

    async def _after_dead_letter(
        self, topic: str, envelope: Envelope, event: Event, reason: str
    ) -> None:
        hook = self.dead_letter_hooks[envelope.type]
        # Once per event, like a handler: the inbox row says the hook ran.
        handled_as = f"dead-letter:{envelope.id}"
        delay = self.retry_backoff_s
        while True:
            try:
                async with (
                    self.pool.acquire(timeout=self.acquire_timeout_s) as conn,
                    conn.transaction(),
                ):
                    if await conn.fetchval(RECORD_HANDLED, handled_as, self.group_id, topic):
                        await hook(conn, envelope, event, reason)
                return
            except Exception as exc:
                stop_if_cancelled(exc)
                if not is_outage(exc):
                    log.exception("the dead-letter hook of %s failed", envelope.type)
                    return
                log.warning("infrastructure unavailable (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_OUTAGE_BACKOFF_S)

    async def _process_raw(self, record: ConsumerRecord[bytes, bytes], handler: RawHandler) -> None:
        # A raw message has no event id of ours: its position is its identity.
        event_id = f"{record.topic}:{record.partition}:{record.offset}"

        async def attempt() -> str:
            async with (
                self.pool.acquire(timeout=self.acquire_timeout_s) as conn,
                conn.transaction(),
            ):
                if not await conn.fetchval(RECORD_HANDLED, event_id, self.group_id, record.topic):
                    return "duplicate"
                await handler(conn, record.value or b"")
            return "handled"

        await self._with_retries(record, attempt)

    def _decode(
        self, record: ConsumerRecord[bytes, bytes]
    ) -> tuple[Envelope, type[Event], Handler]:
        if record.value is None:
            raise TerminalError("empty message")
        try:
            envelope = Envelope.model_validate_json(record.value)
        except ValidationError as exc:
            raise TerminalError(f"not a CloudEvents envelope: {exc}") from exc
        if envelope.type not in self.handlers:
            raise TerminalError(f"unknown event type {envelope.type!r} on {record.topic}")
        cls, handler = self.handlers[envelope.type]
        known_major = int(cls.VERSION.split(".", 1)[0])
        try:
            major = envelope.major_version
        except ValueError as exc:
            raise TerminalError(f"bad schemaversion {envelope.schemaversion!r}") from exc
        if major != known_major:
            raise TerminalError(
                f"unsupported schema version {envelope.schemaversion} of {envelope.type}:"
                f" this consumer reads major version {known_major}"
            )
        return envelope, cls, handler

    async def _handle_once(
        self, topic: str, envelope: Envelope, event: Event, handler: Handler
    ) -> str:
        async with (
            self.pool.acquire(timeout=self.acquire_timeout_s) as conn,
            conn.transaction(),
        ):
            first = await conn.fetchval(RECORD_HANDLED, envelope.id, self.group_id, topic)
            if not first:
                return "duplicate"
            await handler(conn, envelope, event)
        return "handled"

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        log.error(
            "dead-lettered a message from %s: %s",
            record.topic,
            reason,
            extra={"fields": {"topic": record.topic, "offset": record.offset}},
        )
        headers = [
            *(record.headers or ()),
            ("loadbay-error", reason.encode()[:4000]),
            ("loadbay-consumer", self.group_id.encode()),
            ("loadbay-original-partition", str(record.partition).encode()),
            ("loadbay-original-offset", str(record.offset).encode()),
        ]
        for attempt in range(1, 1_000_000):
            try:
                await self.producer.send_and_wait(
                    dead_letter_topic(record.topic),
                    value=record.value,
                    key=record.key,
                    headers=headers,
                )
                break
            except KafkaError as exc:  # never commit past a message we failed to set aside
                delay = min(self.retry_backoff_s * 2**attempt, MAX_OUTAGE_BACKOFF_S)
                log.warning("cannot publish a dead letter (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
        EVENTS_CONSUMED.labels(self.service, record.topic, "dead_lettered").inc()
