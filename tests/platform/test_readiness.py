"""Scale-out on the real broker: topics get the configured partition count, and a replica
beyond it is a ready standby rather than a rollout stuck on readiness."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from loadbay_platform.consumer import Consumer
from loadbay_platform.service import ensure_topics
from loadbay_platform.settings import PlatformSettings
from tests.conftest import Platform, eventually
from tests.reload.flows import publish


async def test_a_replica_beyond_the_partition_count_is_ready_as_a_standby(
    settings: PlatformSettings,
) -> None:
    topic = f"loadbay.test.standby.{uuid.uuid4().hex[:8]}"
    kafka = settings.kafka.model_copy(update={"topic_partitions": 1})
    await ensure_topics(kafka, [topic])

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert len(described["partitions"]) == 1

    async def ignore(_: asyncpg.Connection, __: bytes) -> None:
        return None

    group = f"loadbay-test-{uuid.uuid4().hex[:8]}"
    replicas = [
        Consumer(
            service="test",
            pool=None,  # type: ignore[arg-type]  # no message is ever handled here
            producer=None,  # type: ignore[arg-type]
            kafka=kafka,
            handlers={},
            raw_handlers={topic: ignore},
            group_id=group,
        )
        for _ in range(2)
    ]
    tasks = [asyncio.create_task(r.run()) for r in replicas]
    try:

        async def both_ready() -> bool:
            return all(r.ready.is_set() for r in replicas)

        await eventually(both_ready, within=60)
        assert not any(t.done() for t in tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _count(items: list[bytes], n: int) -> bool:
    return len(items) >= n


async def test_a_handler_longer_than_the_poll_interval_keeps_its_partition(
    platform: Platform, settings: PlatformSettings
) -> None:
    topic = f"loadbay.test.long.{uuid.uuid4().hex[:8]}"
    kafka = settings.kafka.model_copy(update={"topic_partitions": 1, "max_poll_interval_ms": 2000})
    await ensure_topics(kafka, [topic])
    handled: list[bytes] = []

    async def slow(_: asyncpg.Connection, value: bytes) -> None:
        await asyncio.sleep(6)  # three times max_poll_interval_ms: a long load
        handled.append(value)

    resources = platform.running["reload"].resources
    assert resources is not None
    consumer = Consumer(
        service="test",
        pool=resources.pool,
        producer=resources.producer,
        kafka=kafka,
        handlers={},
        raw_handlers={topic: slow},
        group_id=f"loadbay-test-{uuid.uuid4().hex[:8]}",
        busy_poll_s=0.5,
    )
    task = asyncio.create_task(consumer.run())
    try:
        await publish(kafka.bootstrap_servers, topic, b"first")
        await publish(kafka.bootstrap_servers, topic, b"second")

        async def both() -> bool:
            assert not task.done(), task  # a lost partition ends in CommitFailedError
            return len(handled) >= 2

        await eventually(both, within=60)
        await asyncio.sleep(3)  # room for a redelivery, had the commit been lost
        assert handled == [b"first", b"second"]
        # The partition was paused while the handler ran; it is consumed again after.
        await publish(kafka.bootstrap_servers, topic, b"third")
        await eventually(lambda: _count(handled, 3), within=30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
