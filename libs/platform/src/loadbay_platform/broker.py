"""The Kafka broker of a service (faststream): how it connects and how loadbay publishes on it.

One `KafkaBroker` per process carries the producer (the outbox relay, dead letters) and the
event consumer's subscriber (consumer.py). loadbay publishes bytes it has already encoded (the
CloudEvents envelope, or a dead message as it came): faststream adds its `content-type` and
`correlation_id` headers and sends them as they are.
"""

from __future__ import annotations

import logging
import ssl

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity

from loadbay_platform.retries import retrying
from loadbay_platform.settings import KafkaSettings

log = logging.getLogger(__name__)

# The longest wait between two attempts of work that waits out an outage.
MAX_OUTAGE_BACKOFF_S = 30.0


def security(kafka: KafkaSettings) -> BaseSecurity | None:
    """faststream's form of `security_protocol` (PLAINTEXT or SSL, the protocols the settings
    offer without credentials)."""
    protocol = kafka.security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=ssl.create_default_context(), use_ssl=True)
    raise ValueError(
        f"LOADBAY_KAFKA__SECURITY_PROTOCOL={kafka.security_protocol!r}: use PLAINTEXT or SSL"
    )


def create_broker(kafka: KafkaSettings, *, client_id: str = "loadbay") -> KafkaBroker:
    return KafkaBroker(
        kafka.bootstrap_servers,
        client_id=client_id,
        security=security(kafka),
        acks="all",
        linger_ms=5,
        # Topics are created by `ensure_topics` with the configured partition count, before
        # the broker starts; faststream would create them with the broker's default.
        allow_auto_create_topics=False,
        # Through loadbay's log setup (faststream's default prints its own lines to stdout),
        # and one line per message would be most of a busy service's log: debug only.
        logger=log,
        log_level=logging.DEBUG,
        # Handlers are short; a stopping service waits this long for the one in progress.
        graceful_timeout=10.0,
    )


async def publish_until_sent(
    broker: KafkaBroker,
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None,
    headers: dict[str, str],
    backoff_s: float = 0.5,
) -> None:
    """Publish one message, waiting out a broker outage without limit (for what must not be
    lost, e.g. a dead letter whose offset is committed once it is set aside)."""
    async for attempt in retrying(KafkaError, initial_s=backoff_s, max_s=MAX_OUTAGE_BACKOFF_S):
        with attempt:
            await broker.publish(value, topic, key=key, headers=headers)
