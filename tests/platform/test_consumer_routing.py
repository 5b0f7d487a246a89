"""The consumer's routing, fast: faststream's in-memory test broker instead of the real one.

What reaches `<topic>.dlq`, with which reason, without touching the database: undecodable
values, unknown types and major versions, invalid data. (The exactly-once path and outages run
against the real broker and PostgreSQL: test_consumer.py, test_outages.py, tests/faults.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker

from loadbay_contracts import Envelope, FileLanded, dead_letter_topic
from loadbay_platform.broker import create_broker
from loadbay_platform.consumer import Consumer, raw_body
from loadbay_platform.settings import KafkaSettings

TOPIC = FileLanded.topic()
RAW_TOPIC = "loadbay.test.raw"


@dataclass
class DeadLetters:
    found: list[tuple[bytes | None, dict[str, str]]] = field(default_factory=list)

    def reasons(self) -> list[str]:
        return [headers["loadbay-error"] for _, headers in self.found]


async def never_called(_: asyncpg.Connection, __: Envelope, ___: Any) -> None:
    raise AssertionError("a message that cannot be handled reached the handler")


async def ignore(_: asyncpg.Connection, __: bytes) -> None:
    return None


@pytest.fixture
async def routed() -> AsyncIterator[tuple[KafkaBroker, DeadLetters]]:
    broker = create_broker(KafkaSettings())
    Consumer(
        service="test",
        pool=None,  # type: ignore[arg-type]  # nothing here gets as far as the database
        broker=broker,
        kafka=KafkaSettings(),
        handlers={FileLanded: never_called},
        raw_handlers={RAW_TOPIC: ignore},
        group_id="loadbay-test",
    )
    dead = DeadLetters()

    # As it came: a dead letter keeps its headers, "content-type: application/json" included.
    @broker.subscriber(dead_letter_topic(TOPIC), group_id="dlq-reader", decoder=raw_body)
    async def dead_letter(message: KafkaMessage) -> None:
        dead.found.append((message.body, dict(message.headers)))

    async with TestKafkaBroker(broker) as test_broker:
        yield test_broker, dead


def envelope(**changes: Any) -> bytes:
    event = FileLanded(bucket="b", key="d/n/a.csv", size=1, etag="e")
    wrapped = Envelope.wrap(event, source="test").model_copy(update=changes)
    return wrapped.model_dump_json().encode()


async def test_an_unknown_major_version_is_dead_lettered_with_the_reason(
    routed: tuple[KafkaBroker, DeadLetters],
) -> None:
    broker, dead = routed
    value = envelope(schemaversion="2.0")
    await broker.publish(value, TOPIC, key=b"d/n", headers={"traceparent": "00-abc"})
    ((body, headers),) = dead.found
    assert body == value  # as it came
    assert headers["loadbay-error"].startswith("unsupported schema version 2.0 of file.landed")
    assert headers["loadbay-consumer"] == "loadbay-test"
    assert headers["loadbay-original-partition"] == "0"
    assert headers["traceparent"] == "00-abc"  # the original headers travel along


async def test_what_cannot_be_decoded_or_is_unknown_is_dead_lettered(
    routed: tuple[KafkaBroker, DeadLetters],
) -> None:
    broker, dead = routed
    await broker.publish(b"{not json", TOPIC)
    await broker.publish(envelope(type="file.vanished"), TOPIC)
    await broker.publish(envelope(schemaversion="one"), TOPIC)
    await broker.publish(envelope(data={"bucket": "b"}), TOPIC)
    reasons = dead.reasons()
    assert reasons[0].startswith("not a CloudEvents envelope")
    assert reasons[1] == f"unknown event type 'file.vanished' on {TOPIC}"
    assert reasons[2] == "bad schemaversion 'one'"
    assert reasons[3].startswith("invalid file.landed data")
    assert len(reasons) == 4


async def test_a_value_that_claims_json_and_is_not_is_dead_lettered(
    routed: tuple[KafkaBroker, DeadLetters],
) -> None:
    broker, dead = routed
    await broker.publish(b"{not json", TOPIC, headers={"content-type": "application/json"})
    (reason,) = dead.reasons()
    assert reason.startswith("not a CloudEvents envelope")


async def test_the_asyncapi_document_is_version_3_with_every_topic() -> None:
    from loadbay_platform.asyncapi import asyncapi_document

    document = asyncapi_document()
    assert document["asyncapi"] == "3.0.0"
    addresses = {c["address"]: name for name, c in document["channels"].items()}
    assert addresses[TOPIC] == f"{TOPIC}:receive"  # what upstream producers publish
    assert "upstream producers" in document["channels"][f"{TOPIC}:receive"]["description"]
    assert "loadbay.s3.notifications" in addresses
    assert dead_letter_topic(TOPIC) in addresses
    assert dead_letter_topic("loadbay.s3.notifications") in addresses
    assert document["operations"][f"{TOPIC}:receive"]["action"] == "receive"
