"""The consumer's promises: a redelivered event changes nothing, an unknown major version or
a malformed message goes to the dead-letter topic instead of being guessed at."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from loadbay_contracts import Envelope, FileLanded
from tests.conftest import Mailbox, Platform, User, eventually
from tests.reload.flows import (
    batch_prefix,
    create_dataset,
    dead_letters,
    finished_execution,
    land,
    messages,
    publish,
    publish_event,
)


def duplicates_seen(service: str, topic: str) -> float:
    labels = {"service": service, "topic": topic, "outcome": "duplicate"}
    return REGISTRY.get_sample_value("loadbay_events_consumed_total", labels) or 0.0


async def test_unknown_major_versions_and_malformed_messages_are_dead_lettered(
    platform: Platform, names: tuple[str, str]
) -> None:
    domain, name = names
    key = f"{domain}/{name}/upload_date=1/u/csv/a.csv"
    event = FileLanded(bucket="b", key=key, size=1, etag="e")
    envelope = Envelope.wrap(event, source="test").model_copy(update={"schemaversion": "2.0"})
    bootstrap = platform.settings.kafka.bootstrap_servers
    await publish_event(bootstrap, envelope, event)
    await publish(bootstrap, "loadbay.file.landed", b"{not json " + domain.encode())

    async def both() -> list[dict[str, Any]]:
        found = await dead_letters(bootstrap, "loadbay.file.landed", domain)
        return found if len(found) >= 2 else []

    async def both_reasons() -> list[dict[str, Any]]:
        found = await both()
        reasons = " | ".join(d["headers"]["loadbay-error"] for d in found)
        seen = "not a CloudEvents envelope" in reasons and "schema version 2.0" in reasons
        return found if seen else []

    found = await eventually(both_reasons, within=30)
    by_reason = {d["headers"]["loadbay-error"].split(":")[0]: d["headers"] for d in found}
    assert "unsupported schema version 2.0 of file.landed" in by_reason
    # Every consumer group of the topic sets it aside on its own, and says so.
    assert {d["headers"]["loadbay-consumer"] for d in found} >= {"loadbay-reload"}


async def test_a_header_that_is_not_utf8_does_not_lose_the_message(
    platform: Platform, names: tuple[str, str]
) -> None:
    """faststream reads headers as strict UTF-8: the consumer reads them with U+FFFD instead,
    so such a message still gets an outcome (here: the DLQ) rather than being skipped."""
    domain, _ = names
    bootstrap = platform.settings.kafka.bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            "loadbay.file.landed",
            b"{not json " + domain.encode(),
            headers=[("origin", b"\xff\xfe"), ("empty", b"")],
        )
    finally:
        await producer.stop()

    async def found() -> list[dict[str, Any]]:
        return await dead_letters(bootstrap, "loadbay.file.landed", domain)

    (dead, *_) = await eventually(found, within=30)
    assert dead["headers"]["loadbay-error"].startswith("not a CloudEvents envelope")
    assert dead["headers"]["origin"] == "\ufffd\ufffd"


async def test_redelivered_events_have_no_second_effect(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
    warehouse: asyncpg.Connection,
    mail: Mailbox,
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    land(
        s3,
        platform.settings.s3.lz_bucket,
        batch_prefix(domain, name, alice),
        {"a.csv": b"id,name,amount,day\n1,a,1,2024-01-01\n"},
    )
    execution = await finished_execution(reload_api, alice, domain, name)
    await mail.wait_for(alice.email)
    bootstrap = platform.settings.kafka.bootstrap_servers

    # Send the very same reload.requested and reload.finished records again, as Kafka does
    # after a crash between the effect and the offset commit.
    for topic, service in (
        ("loadbay.reload.requested", "loader"),
        ("loadbay.reload.finished", "notifier"),
    ):
        (original,) = await messages(bootstrap, topic, execution["id"])
        before = duplicates_seen(service, topic)
        await publish(bootstrap, topic, original["raw"], original["key"])

        async def skipped(
            service: str = service, topic: str = topic, before: float = before
        ) -> bool:
            return duplicates_seen(service, topic) > before

        await eventually(skipped)

    loads = await warehouse.fetchval(
        "SELECT count(*) FROM loadbay_loader.loads WHERE id = $1", execution["id"]
    )
    assert loads == 1
    assert len(await warehouse.fetch(f'SELECT * FROM "{domain}"."{name}"')) == 1
    assert len(mail.messages_to(alice.email)) == 1
