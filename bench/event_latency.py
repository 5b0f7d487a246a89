"""The produce-to-handle round trip of one event through the platform's consumer.

Starts the embedded servers (as the tests do) and one service (`run_service`) whose only
handler records when it ran, then produces `--events` events one at a time, waiting for each to
be handled before sending the next, and prints the median and p95 milliseconds from the moment
the producer was asked to send to the moment the handler ran (in its transaction, with the
inbox row written), over the exactly-once path every loadbay consumer uses.

    .venv/bin/python bench/event_latency.py --events 200
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from loadbay_cli.stack import EmbeddedStack
from loadbay_contracts import Envelope, Event, FileLanded
from loadbay_platform.consumer import DeadLetterHook, Handler, RawHandler
from loadbay_platform.service import Resources, RunningService, run_service
from loadbay_platform.settings import KafkaSettings, PlatformSettings, PostgresSettings

# The event upstream producers publish: its contract is the most stable of all.
BENCH_EVENT = FileLanded


class Timed:
    """A service with one handler, which tells the bench when each event reached it."""

    name = "bench"
    title = "bench"
    description = "the event latency bench"
    migrations_package = "loadbay_notifier"

    def __init__(self) -> None:
        self.handled: dict[str, float] = {}
        self.arrived = asyncio.Event()

    def handlers(self, res: Resources) -> Mapping[type[Event], Handler]:
        async def on_event(_: asyncpg.Connection, envelope: Envelope, __: Any) -> None:
            self.handled[envelope.id] = time.perf_counter()
            self.arrived.set()

        return {BENCH_EVENT: on_event}

    def raw_handlers(self, res: Resources) -> Mapping[str, RawHandler]:
        return {}

    def dead_letter_hooks(self, res: Resources) -> Mapping[type[Event], DeadLetterHook]:
        return {}

    def long_running(self) -> frozenset[type[Event]]:
        return frozenset()

    def background(self, res: Resources) -> list[Coroutine[Any, Any, None]]:
        return []

    def routes(self, app: FastAPI, res: Resources) -> None:
        return None


def sample_event() -> Event:
    return FileLanded(bucket="bench", key="bench/latency/a.csv", size=1, etag="e")


async def measure(
    bootstrap: str, postgres_url: str, events: int, kafka: dict[str, Any], idle_ms: float = 0
) -> list[float]:
    settings = PlatformSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, **kafka),
        postgres=PostgresSettings(url=postgres_url),
        dev_mode=True,
    )
    definition = Timed()
    state = RunningService()
    service = asyncio.create_task(run_service(definition, settings, state=state))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        ready = asyncio.create_task(state.ready.wait())
        await asyncio.wait({service, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if service.done():
            service.result()  # it ended before listening: show why
        ready.cancel()
        event = sample_event()
        # Warm up: the first event also waits for the consumer to join its group.
        async with asyncio.timeout(120):
            await send_and_wait(producer, definition, event)
        latencies = []
        pauses = random.Random(5)
        for _ in range(events):
            # An idle consumer: the event arrives somewhere in its wait for the next fetch.
            await asyncio.sleep(pauses.uniform(0, idle_ms) / 1000)
            async with asyncio.timeout(30):
                latencies.append(await send_and_wait(producer, definition, event))
        return latencies
    finally:
        await producer.stop()
        service.cancel()
        await asyncio.gather(service, return_exceptions=True)


async def send_and_wait(producer: AIOKafkaProducer, definition: Timed, event: Event) -> float:
    """Milliseconds from asking the producer to send one event to its handler running."""
    envelope = Envelope.wrap(event, source="bench")
    started = time.perf_counter()
    await producer.send_and_wait(
        event.topic(), value=envelope.model_dump_json().encode(), key=event.ordering_key().encode()
    )
    while envelope.id not in definition.handled:
        definition.arrived.clear()
        if envelope.id not in definition.handled:
            await definition.arrived.wait()
    return (definition.handled[envelope.id] - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument(
        "--kafka", action="append", default=[], help="a KafkaSettings field: fetch_max_wait_ms=500"
    )
    parser.add_argument(
        "--idle-ms",
        type=float,
        default=0,
        help="before each event, leave the consumer idle for up to this long (uniformly random)",
    )
    args = parser.parse_args()
    kafka = dict(item.split("=", 1) for item in args.kafka)
    state = Path(tempfile.mkdtemp(prefix="loadbay-bench-latency-"))
    try:
        with EmbeddedStack(state) as stack:
            info = stack.info
            latencies = asyncio.run(
                measure(
                    info.kafka_bootstrap_servers,
                    info.postgres_url,
                    args.events,
                    kafka,
                    args.idle_ms,
                )
            )
    finally:
        shutil.rmtree(state, ignore_errors=True)
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    print(
        f"{len(latencies)} events, produce to handler: median {statistics.median(latencies):.1f}"
        f" ms, p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
