"""How every loadbay service runs: one composition root, the same for all of them.

`run_service` opens the pool (and applies the service's migrations), the Kafka broker
(faststream: the producer, then the event consumer's subscriber) and the S3 client, then runs
the outbox relay, the event consumer, the service's own background tasks and its HTTP API until
cancelled, and closes everything in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import uvicorn
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from loadbay_contracts import EVENT_TYPES, Event, dead_letter_topic
from loadbay_platform import logs
from loadbay_platform.broker import create_broker
from loadbay_platform.consumer import Consumer, DeadLetterHook, Handler, RawHandler
from loadbay_platform.db import close_pool, create_pool, migrate, ping
from loadbay_platform.http import create_app
from loadbay_platform.liveness import Liveness
from loadbay_platform.outbox import OutboxRelay
from loadbay_platform.s3 import ObjectStore, s3_client
from loadbay_platform.secrets import check_platform_secrets
from loadbay_platform.settings import KafkaSettings, PlatformSettings
from loadbay_platform.work_queue import WorkQueue, enqueuer

log = logging.getLogger(__name__)


@dataclass
class Resources:
    """What a service's handlers, tasks and routes are given; built once per process."""

    service: str
    settings: PlatformSettings
    pool: asyncpg.Pool
    broker: KafkaBroker  # publish with it; the platform starts and stops it
    s3: ObjectStore
    extras: dict[str, Any] = field(default_factory=dict)


class ServiceDefinition(Protocol):
    name: str  # e.g. "reload"; its schema is loadbay_<name>
    title: str
    description: str

    @property
    def migrations_package(self) -> str: ...

    def handlers(self, res: Resources) -> Mapping[type[Event], Handler]: ...

    def raw_handlers(self, res: Resources) -> Mapping[str, RawHandler]: ...

    def dead_letter_hooks(self, res: Resources) -> Mapping[type[Event], DeadLetterHook]: ...

    def long_running(self) -> frozenset[type[Event]]:
        """Events whose handlers run from the work queue, off the poll loop (loads)."""
        ...

    def background(self, res: Resources) -> list[Coroutine[Any, Any, None]]: ...

    def routes(self, app: FastAPI, res: Resources) -> None: ...


def schema_for(service: str) -> str:
    return f"loadbay_{service}"


async def ensure_topics(kafka: KafkaSettings, topics: list[str]) -> None:
    """Create topics (and their dead-letter twins) that do not exist yet, with the configured
    partition count; waits for the broker if it is not up yet."""
    wanted = sorted({*topics, *(dead_letter_topic(t) for t in topics)})
    delay = 0.5
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=kafka.bootstrap_servers, security_protocol=kafka.security_protocol
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(t, kafka.topic_partitions, kafka.replication_factor)
                for t in wanted
                if t not in existing
            ]
            if missing:
                with contextlib.suppress(KafkaError):  # another replica was quicker
                    await admin.create_topics(missing)
            return
        except (KafkaError, OSError) as exc:
            log.warning("broker unavailable (%r); creating topics again in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        finally:
            await admin.close()


@dataclass
class RunningService:
    """Handles for tests and the dev stack: the port it listens on, readiness and resources."""

    ready: asyncio.Event = field(default_factory=asyncio.Event)
    port: int | None = None
    resources: Resources | None = None


async def run_service(
    definition: ServiceDefinition,
    settings: PlatformSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    state: RunningService | None = None,
) -> None:
    state = state or RunningService()
    check_platform_secrets(settings)
    schema = schema_for(definition.name)
    pool = await create_pool(settings.postgres, schema)
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn, schema, definition.migrations_package)
        if applied:
            log.info("applied migrations %s", applied, extra={"fields": {"schema": schema}})
        broker = create_broker(settings.kafka, client_id=f"loadbay-{definition.name}")
        await broker.connect()  # the producer: handlers and tasks may publish from here on
        try:
            async with s3_client(settings.s3) as s3:
                res = Resources(definition.name, settings, pool, broker, s3)
                state.resources = res
                await _serve(definition, res, host, port, state)
        finally:
            await broker.stop()
    finally:
        await close_pool(pool)


async def _serve(
    definition: ServiceDefinition,
    res: Resources,
    host: str,
    port: int,
    state: RunningService,
) -> None:
    handlers = definition.handlers(res)
    raw = definition.raw_handlers(res)
    hooks = definition.dead_letter_hooks(res)
    long_running = {cls: h for cls, h in handlers.items() if cls in definition.long_running()}
    work_queue: WorkQueue | None = None
    if long_running:
        work_queue = WorkQueue(
            service=definition.name,
            pool=res.pool,
            handlers=long_running,
            dead_letter_hooks=hooks,
            settings=res.settings.work,
            max_retries=res.settings.kafka.max_retries,
        )
        queue = enqueuer(definition.name)
        handlers = {cls: queue if cls in long_running else h for cls, h in handlers.items()}
    liveness = Liveness()
    consumer: Consumer | None = None
    if handlers or raw:
        consumer = Consumer(
            service=definition.name,
            pool=res.pool,
            broker=res.broker,
            kafka=res.settings.kafka,
            handlers=handlers,
            raw_handlers=raw,
            dead_letter_hooks=hooks,
            acquire_timeout_s=res.settings.postgres.acquire_timeout_s,
            liveness=liveness,
        )
    # Every loadbay topic, not only those consumed here: a topic a producer creates by
    # publishing would get the broker's default partition count instead.
    await ensure_topics(
        res.settings.kafka,
        sorted(
            {cls.topic() for cls in EVENT_TYPES.values()} | set(consumer.topics if consumer else [])
        ),
    )
    await res.broker.start()  # the subscriber joins its group

    async def readiness() -> str | None:
        if consumer is not None and not consumer.ready.is_set():
            return "the event consumer has not reached the broker yet"
        try:
            async with res.pool.acquire(timeout=2) as conn:
                await ping(conn)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            return f"database unreachable: {exc}"
        return None

    app = create_app(
        definition.name,
        res.settings.auth,
        readiness,
        title=definition.title,
        description=definition.description,
        http=res.settings.http,
        liveness=liveness,
    )
    app.state.resources = res
    definition.routes(app, res)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
    )
    tasks = [
        asyncio.create_task(
            OutboxRelay(
                res.pool,
                res.broker,
                definition.name,
                acquire_timeout_s=res.settings.postgres.acquire_timeout_s,
                liveness=liveness,
            ).run()
        ),
        asyncio.create_task(server.serve()),
        *(asyncio.create_task(c) for c in definition.background(res)),
    ]
    if consumer is not None:
        tasks.append(asyncio.create_task(consumer.run()))
    if work_queue is not None:
        tasks.append(asyncio.create_task(work_queue.run()))
    try:
        while not server.started:
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.02)
        if server.started:
            state.port = server.servers[0].sockets[0].getsockname()[1]
            log.info("%s listening on http://%s:%s", definition.name, host, state.port)
            state.ready.set()
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            t.result()  # a task that ends on its own is a crash: surface it
    finally:
        server.should_exit = True
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def configure_logging(service: str, settings: PlatformSettings) -> None:
    logs.configure(service, settings.log_level)
