"""Steps shared by the reload tests: create a dataset, land files, wait for executions."""

from __future__ import annotations

import json
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from loadbay_contracts import Envelope, Event
from tests.conftest import User, eventually

COLUMNS = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "name", "type": "text"},
    {"name": "amount", "type": "numeric"},
    {"name": "day", "type": "date"},
]


async def create_dataset(
    api: httpx.AsyncClient,
    user: User,
    domain: str,
    name: str,
    columns: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body = {"domain": domain, "name": name, "columns": columns or COLUMNS, **extra}
    response = await api.post("/datasets", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def batch_prefix(domain: str, name: str, user: User, upload_date: int = 1700000000) -> str:
    return f"{domain}/{name}/upload_date={upload_date}/{user.user_id}/csv/"


def land(s3: Any, bucket: str, prefix: str, files: dict[str, bytes], success: bool = True) -> None:
    for file_name, body in files.items():
        s3.put_object(Bucket=bucket, Key=prefix + file_name, Body=body)
    if success:
        s3.put_object(Bucket=bucket, Key=prefix + "_SUCCESS", Body=b"")


async def executions(
    api: httpx.AsyncClient, user: User, domain: str, name: str
) -> list[dict[str, Any]]:
    response = await api.get(f"/datasets/{domain}/{name}/executions", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def finished_execution(
    api: httpx.AsyncClient, user: User, domain: str, name: str, count: int = 1
) -> dict[str, Any]:
    """Wait until `count` executions exist and the newest is finished; return the newest."""

    async def newest_done() -> dict[str, Any] | None:
        found = await executions(api, user, domain, name)
        if len(found) >= count and found[0]["status"] != "running":
            return found[0]
        return None

    return await eventually(newest_done, within=30)


async def files(
    api: httpx.AsyncClient, user: User, domain: str, name: str, status: str | None = None
) -> list[dict[str, Any]]:
    params = {"status": status} if status else {}
    response = await api.get(
        f"/datasets/{domain}/{name}/files", params=params, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def publish(bootstrap: str, topic: str, value: bytes, key: bytes | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def publish_event(bootstrap: str, envelope: Envelope, event: Event) -> None:
    await publish(
        bootstrap, event.topic(), envelope.model_dump_json().encode(), event.ordering_key().encode()
    )


async def messages(bootstrap: str, topic: str, containing: str) -> list[dict[str, Any]]:
    """Messages on `topic` whose value mentions `containing`, read from the start without a
    consumer group: `value` (parsed JSON), `raw`, `key` and `headers`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[dict[str, Any]] = []
        batch = await consumer.getmany(timeout_ms=1000)
        while batch:
            for records in batch.values():
                for r in records:
                    if r.value and containing in r.value.decode("utf-8", "replace"):
                        headers = {k: v.decode() for k, v in r.headers}
                        try:
                            value = json.loads(r.value)
                        except ValueError:
                            value = None
                        found.append(
                            {"value": value, "raw": r.value, "key": r.key, "headers": headers}
                        )
            batch = await consumer.getmany(timeout_ms=300)
        return found
    finally:
        await consumer.stop()


async def dead_letters(bootstrap: str, topic: str, containing: str) -> list[dict[str, Any]]:
    """Dead letters of `topic` whose value mentions `containing`."""
    return await messages(bootstrap, topic + ".dlq", containing)
