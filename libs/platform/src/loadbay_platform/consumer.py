"""The event consumer every service runs: decode, check version, handle exactly once, commit.

It is one faststream subscriber on the service's broker (broker.py), over every topic the
service reads, with manual acknowledgement:
- Each event's effect and its inbox row (the handled event id) are written in one transaction,
  so a redelivered event changes nothing.
- The offset is committed (`message.ack()`) only after that transaction commits.
- An event that cannot be decoded, has an unknown type or major version, or keeps failing after
  bounded retries goes to `<topic>.dlq` with the reason in its headers; then its offset is
  committed, so one poison message never blocks a partition.
- An outage of the database, object store or broker is waited out without limit.

One subscriber (one Kafka consumer) per service rather than one per event type: every idle
consumer fetches again every `fetch_max_wait_ms`, so more of them would multiply the idle cost;
the typed handlers are chosen by the envelope's type.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

import asyncpg
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.message import StreamMessage
from pydantic import ValidationError

from loadbay_contracts import Envelope, Event, dead_letter_topic
from loadbay_platform import logs
from loadbay_platform.broker import MAX_OUTAGE_BACKOFF_S, publish_until_sent
from loadbay_platform.errors import TerminalError
from loadbay_platform.liveness import Liveness
from loadbay_platform.metrics import CONSUMER_LAG, EVENTS_CONSUMED, HANDLER_SECONDS
from loadbay_platform.outages import is_outage, stop_if_cancelled
from loadbay_platform.retries import retrying
from loadbay_platform.settings import KafkaSettings

__all__ = ["MAX_OUTAGE_BACKOFF_S", "Consumer", "DeadLetterHook", "Handler", "RawHandler"]

log = logging.getLogger(__name__)

Handler = Callable[[asyncpg.Connection, Envelope, Any], Awaitable[None]]
# For topics that carry someone else's format (e.g. S3 event notifications): gets the raw value.
RawHandler = Callable[[asyncpg.Connection, bytes], Awaitable[None]]
# Run (once, in its own transaction) after a valid event was dead-lettered, with the reason:
# where the event asked for work someone waits on, it records a failed outcome, so that every
# execution reaches a terminal state even when its request could not be handled.
DeadLetterHook = Callable[[asyncpg.Connection, Envelope, Any, str], Awaitable[None]]
Record: TypeAlias = ConsumerRecord[bytes, bytes]

RECORD_HANDLED = (
    "INSERT INTO inbox (event_id, consumer, topic) VALUES ($1, $2, $3)"
    " ON CONFLICT DO NOTHING RETURNING true"
)
LOOP = "the event consumer"


async def tolerant_headers(
    record: Record, parse: Callable[[Record], Awaitable[StreamMessage[Record]]]
) -> StreamMessage[Record]:
    """faststream's parser, given headers it can read: it decodes every header value as strict
    UTF-8, and a record it cannot parse is skipped without an outcome (and its offset committed
    with the next one). A value that is not UTF-8 (or none) is read with U+FFFD instead."""
    try:
        for _, value in record.headers:
            value.decode()
    except (UnicodeDecodeError, AttributeError):
        readable = tuple(
            (name, (value or b"").decode(errors="replace").encode())
            for name, value in record.headers
        )
        record = dataclasses.replace(record, headers=readable)
    return await parse(record)


async def raw_body(message: StreamMessage[Record]) -> bytes:
    """The value as it came: the consumer decodes it itself (faststream would parse JSON by the
    `content-type` header, and a value that fails that never reaches the handler)."""
    return message.body


def outage_only(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and is_outage(exc)


class Consumer:
    def __init__(
        self,
        *,
        service: str,
        pool: asyncpg.Pool,
        broker: KafkaBroker,
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
        self.broker = broker
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
        self._busy = False
        if not self.topics:
            raise ValueError("a consumer needs a topic to read: a handler or a raw handler")
        self.subscriber = broker.subscriber(
            *self.topics,
            group_id=self.group_id,
            ack_policy=AckPolicy.MANUAL,
            # Tansu reports wrong end offsets, so never start at "latest".
            auto_offset_reset="earliest",
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            max_poll_interval_ms=kafka.max_poll_interval_ms,
            parser=tolerant_headers,
            decoder=raw_body,
            title=f"{self.group_id}:consume",
            description=f"The {service} service's consumer group: every event handled once.",
        )
        self.subscriber(self.on_message)

    async def on_message(self, message: KafkaMessage) -> None:
        """faststream's handler: a durable outcome for the record, then its offset."""
        record: Record = message.raw_message  # one record: this is not a batch subscriber
        try:
            await self.process(record)
        except Exception:  # a bug here, not in a handler: read the record again, never skip it
            log.exception("no outcome for %s:%s@%s", record.topic, record.partition, record.offset)
            await message.nack()  # seeks back to the record
            await asyncio.sleep(5 * self.retry_backoff_s)
            return
        try:
            await message.ack()
        except (CommitFailedError, IllegalStateError) as exc:
            # The effect is durable; the partition's new owner finds it in the inbox.
            log.warning("%s:%s moved to another replica (%r)", record.topic, record.partition, exc)
        except KafkaError as exc:  # the next commit covers this offset too; a redelivery is a no-op
            log.warning("offset of %s:%s not committed (%r)", record.topic, record.partition, exc)
        self._report_lag(record)

    async def run(self) -> None:
        """Report liveness and readiness while the subscriber runs (start the broker first)."""
        while True:
            if self.subscriber.running and self.subscriber.consumer is not None:
                # Ready once it polls, with or without partitions: a replica beyond the
                # partition count is a healthy standby, not a stalled rollout.
                self.ready.set()
                alive = any(not t.done() for t in self.subscriber.tasks)
                if alive and not self._busy:
                    self.liveness.turn(LOOP)
            await asyncio.sleep(1.0)

    def _report_lag(self, record: Record) -> None:
        consumer = self.subscriber.consumer
        if consumer is None:
            return
        highwater = consumer.highwater(TopicPartition(record.topic, record.partition))
        if highwater is not None:
            CONSUMER_LAG.labels(self.service, record.topic, str(record.partition)).set(
                max(highwater - record.offset - 1, 0)
            )

    async def process(self, record: Record) -> None:
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
        self, record: Record, attempt: Callable[[], Awaitable[str]]
    ) -> tuple[str, str | None]:
        """Run `attempt` until it has a durable outcome: (outcome, None), or ("dead_lettered",
        the reason).

        The database or network being unavailable is no fault of the event: that is retried
        without limit (capped, jittered backoff), so an outage never dead-letters good events.
        A failure of the handler itself is retried `max_retries` times, then dead-lettered; a
        TerminalError is dead-lettered at once."""
        failures = 0

        def retry(exc: BaseException) -> bool:
            nonlocal failures
            if not isinstance(exc, Exception) or isinstance(exc, TerminalError):
                return False
            if is_outage(exc):  # no fault of the event: wait it out, without limit
                log.warning("infrastructure unavailable (%r); retrying", exc)
                return True
            failures += 1  # the handler failed: bounded retries, then the DLQ
            if failures >= self.kafka.max_retries:
                return False
            EVENTS_CONSUMED.labels(self.service, record.topic, "retried").inc()
            log.warning("handling failed (attempt %d): %r", failures, exc)
            return True

        try:
            async for each in retrying(
                retry, initial_s=self.retry_backoff_s, max_s=MAX_OUTAGE_BACKOFF_S
            ):
                with each:
                    outcome = await self._guarded(attempt)
        except TerminalError as exc:
            await self._dead_letter(record, str(exc))
            return "dead_lettered", str(exc)
        except Exception as exc:
            log.exception("giving up on a message of %s after %d attempts", record.topic, failures)
            reason = f"{type(exc).__name__}: {exc}"
            await self._dead_letter(record, reason)
            return "dead_lettered", reason
        EVENTS_CONSUMED.labels(self.service, record.topic, outcome).inc()
        return outcome, None

    async def _guarded(self, attempt: Callable[[], Awaitable[str]]) -> str:
        """One attempt, counted as a turn of the loop (a long outage is not a stall)."""
        self.liveness.turn(LOOP)
        self._busy = True
        try:
            return await attempt()
        except Exception as exc:
            stop_if_cancelled(exc)
            raise
        finally:
            self._busy = False

    async def _after_dead_letter(
        self, topic: str, envelope: Envelope, event: Event, reason: str
    ) -> None:
        hook = self.dead_letter_hooks[envelope.type]
        # Once per event, like a handler: the inbox row says the hook ran.
        handled_as = f"dead-letter:{envelope.id}"

        async def run_hook() -> str:
            async with (
                self.pool.acquire(timeout=self.acquire_timeout_s) as conn,
                conn.transaction(),
            ):
                if await conn.fetchval(RECORD_HANDLED, handled_as, self.group_id, topic):
                    await hook(conn, envelope, event, reason)
            return "handled"

        try:
            async for each in retrying(
                outage_only, initial_s=self.retry_backoff_s, max_s=MAX_OUTAGE_BACKOFF_S
            ):
                with each:
                    await self._guarded(run_hook)
        except Exception:
            log.exception("the dead-letter hook of %s failed", envelope.type)

    async def _process_raw(self, record: Record, handler: RawHandler) -> None:
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

    def _decode(self, record: Record) -> tuple[Envelope, type[Event], Handler]:
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

    async def _dead_letter(self, record: Record, reason: str) -> None:
        log.error(
            "dead-lettered a message from %s: %s",
            record.topic,
            reason,
            extra={"fields": {"topic": record.topic, "offset": record.offset}},
        )
        headers = {name: value.decode(errors="replace") for name, value in record.headers or ()} | {
            "loadbay-error": reason.encode()[:4000].decode(errors="ignore"),
            "loadbay-consumer": self.group_id,
            "loadbay-original-partition": str(record.partition),
            "loadbay-original-offset": str(record.offset),
        }
        # Never commit past a message that could not be set aside: wait the broker out.
        await publish_until_sent(
            self.broker,
            dead_letter_topic(record.topic),
            record.value,
            key=record.key,
            headers=headers,
            backoff_s=self.retry_backoff_s,
        )
        EVENTS_CONSUMED.labels(self.service, record.topic, "dead_lettered").inc()
