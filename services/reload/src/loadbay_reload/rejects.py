"""Objects in the landing zone that cannot be registered, reported one by one to the
dead-letter topic of `file.landed` (with the reason in `loadbay-error`), so one odd key never
blocks the watcher or its batch.

They are published straight to Kafka rather than through the outbox: a key may hold characters
PostgreSQL cannot store (NUL). A retried handler may report a key twice; a report is a report.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from faststream.kafka import KafkaBroker

from loadbay_contracts import Envelope, FileLanded, dead_letter_topic
from loadbay_platform import logs
from loadbay_platform.reasons import truncate
from loadbay_reload.landing import printable

log = logging.getLogger(__name__)
Reject = Callable[[FileLanded, str], Awaitable[None]]


def dead_letterer(broker: KafkaBroker, service: str) -> Reject:
    async def reject(landed: FileLanded, reason: str) -> None:
        envelope = Envelope.wrap(
            landed, source=f"loadbay/{service}", correlation_id=logs.correlation_id.get()
        )
        log.warning("rejected s3://%s/%s: %s", landed.bucket, printable(landed.key), reason)
        await broker.publish(
            envelope.model_dump_json().encode(),
            dead_letter_topic(FileLanded.topic()),
            key=printable(landed.ordering_key()).encode(),
            headers={"loadbay-error": truncate(reason), "loadbay-consumer": f"loadbay-{service}"},
        )

    return reject
