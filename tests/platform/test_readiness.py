"""Scale-out on the real broker: topics get the configured partition count, and a replica
beyond it is a ready standby rather than a rollout stuck on readiness."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from loadbay_platform.broker import create_broker
from loadbay_platform.consumer import Consumer
from loadbay_platform.service import ensure_topics
from loadbay_platform.settings import PlatformSettings
from tests.conftest import eventually


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
    brokers = [create_broker(kafka) for _ in range(2)]  # a process each
    replicas = [
        Consumer(
            service="test",
            pool=None,  # type: ignore[arg-type]  # no message is ever handled here
            broker=broker,
            kafka=kafka,
            handlers={},
            raw_handlers={topic: ignore},
            group_id=group,
        )
        for broker in brokers
    ]
    await asyncio.gather(*(b.start() for b in brokers))
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
        await asyncio.gather(*(b.stop() for b in brokers))
