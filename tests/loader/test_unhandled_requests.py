"""A request the loader cannot handle still ends its execution: once its event is
dead-lettered, a failed outcome with the reason goes out (once, however often it is redelivered),
so no reload or distribution run stays "running" for ever."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker

from loadbay_contracts import (
    ColumnSpec,
    DatasetSpec,
    Envelope,
    FileRef,
    ReloadRequested,
    WorkspaceColumn,
    WorkspaceLoadRequested,
    WorkspaceTarget,
)
from loadbay_loader.handlers import on_unhandled_reload, on_unhandled_workspace_load
from loadbay_platform.broker import create_broker
from loadbay_platform.consumer import Consumer
from loadbay_platform.settings import PlatformSettings


@pytest.fixture
async def broker(settings: PlatformSettings) -> AsyncIterator[KafkaBroker]:
    started = create_broker(settings.kafka)
    await started.connect()
    try:
        yield started
    finally:
        await started.stop()


async def boom(*_: object) -> None:
    raise RuntimeError("a bug the loader cannot get past")


def record(envelope: Envelope, topic: str) -> ConsumerRecord[bytes, bytes]:
    value = envelope.model_dump_json().encode()
    return ConsumerRecord(topic, 0, 1, 0, 0, b"k", value, None, 1, len(value), [])


def consumer(pool: asyncpg.Pool, broker: KafkaBroker, settings: PlatformSettings) -> Consumer:
    return Consumer(
        service="loader",
        pool=pool,
        broker=broker,
        kafka=settings.kafka.model_copy(update={"max_retries": 2}),
        handlers={ReloadRequested: boom, WorkspaceLoadRequested: boom},
        dead_letter_hooks={
            ReloadRequested: on_unhandled_reload,
            WorkspaceLoadRequested: on_unhandled_workspace_load,
        },
        group_id=f"loadbay-loader-test-{uuid.uuid4().hex[:8]}",
        retry_backoff_s=0.01,
    )


async def outcomes(pool: asyncpg.Pool, topic: str, request_id: str) -> list[dict[str, object]]:
    rows = await pool.fetch("SELECT envelope::text AS e FROM outbox WHERE topic = $1", topic)
    found = [json.loads(r["e"])["data"] for r in rows]
    return [d for d in found if d["request_id"] == request_id]


async def test_a_reload_the_loader_cannot_handle_fails_with_the_reason_once(
    pool: asyncpg.Pool, broker: KafkaBroker, settings: PlatformSettings
) -> None:
    execution = str(uuid.uuid4())
    event = ReloadRequested(
        execution_id=execution,
        dataset=DatasetSpec(
            dataset_id="ds-1",
            domain="sales",
            name="orders",
            columns=(ColumnSpec(name="id", type="integer"),),
        ),
        files=(FileRef(bucket="b", key="sales/orders/x.csv", etag="e", size=1),),
        dlz_bucket="dlz",
        dlz_prefix="sales/orders/",
        triggered_by="alice",
        trigger="api",
    )
    unhandled = record(Envelope.wrap(event, source="test"), event.topic())
    consumer_ = consumer(pool, broker, settings)
    await consumer_.process(unhandled)
    await consumer_.process(unhandled)  # redelivered after a crash: still one outcome

    (outcome,) = await outcomes(pool, "loadbay.reload.loaded", execution)
    assert outcome["status"] == "failed"
    message = outcome["error"]["message"]  # type: ignore[index]
    assert "the loader could not carry out the reload" in message
    assert "a bug the loader cannot get past" in message


async def test_a_workspace_load_the_loader_cannot_handle_fails_every_target(
    pool: asyncpg.Pool, broker: KafkaBroker, settings: PlatformSettings
) -> None:
    request_id = str(uuid.uuid4())
    targets = tuple(
        WorkspaceTarget(
            workspace_id=f"w{i}", client_id=f"c{i}", schema_name=f"ws_p_c{i}",
            mode="full",
        )
        for i in range(2)
    )  # fmt: skip
    event = WorkspaceLoadRequested(
        request_id=request_id,
        run_id="run-1",
        data_product_id="p",
        dataset="t",
        timestamp="20240101000000",
        bucket="b",
        keys=("t_20240101000000_full.csv",),
        columns=(WorkspaceColumn(name="cp__id", type="text"),),
        targets=targets,
    )
    await consumer(pool, broker, settings).process(
        record(Envelope.wrap(event, source="test"), event.topic())
    )

    (outcome,) = await outcomes(pool, "loadbay.workspace.load.completed", request_id)
    results = outcome["results"]
    assert [r["status"] for r in results] == ["failed", "failed"]  # type: ignore[union-attr]
    assert all("could not carry out the load" in r["reason"] for r in results)  # type: ignore[union-attr]
