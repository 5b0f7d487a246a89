"""Outages of a dependency are waited out, never dead-lettered: the consumer's retry loop with
the errors the object store, the database and the broker really raise."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import ConsumerRecord
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from loadbay_platform.broker import create_broker
from loadbay_platform.consumer import Consumer
from loadbay_platform.db import close_pool, create_pool, watched
from loadbay_platform.http import create_app
from loadbay_platform.liveness import Liveness
from loadbay_platform.logs import RepeatLimiter
from loadbay_platform.outages import is_outage
from loadbay_platform.settings import KafkaSettings, PlatformSettings, PostgresSettings


def s3_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "GetObject")


def test_outages_are_told_from_faults_of_the_work() -> None:
    assert is_outage(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert is_outage(ReadTimeoutError(endpoint_url="http://127.0.0.1:9"))
    assert is_outage(asyncpg.InternalClientError("cannot switch to state 15"))
    assert is_outage(s3_error("SlowDown", 503))
    assert is_outage(s3_error("InternalError", 500))
    assert not is_outage(s3_error("NoSuchKey", 404))
    assert not is_outage(s3_error("AccessDenied", 403))
    assert not is_outage(ValueError("bad data"))


async def ignore(_: asyncpg.Connection, __: bytes) -> None:
    return None


async def test_an_object_store_outage_is_retried_past_the_handler_retry_limit() -> None:
    consumer = Consumer(
        service="test",
        pool=None,  # type: ignore[arg-type]  # the attempt below does not use it
        # Never connected: a dead letter would need it, and must not happen.
        broker=create_broker(KafkaSettings()),
        kafka=KafkaSettings(max_retries=2),
        handlers={},
        raw_handlers={"loadbay.test.outages": ignore},
        retry_backoff_s=0.001,
    )
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        "loadbay.reload.requested", 0, 1, 0, 0, b"k", b"{}", None, 1, 2, []
    )
    failures = [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        s3_error("ServiceUnavailable", 503),
        asyncpg.InternalClientError("cannot switch to state 15"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
    ]

    async def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "handled"

    assert await consumer._with_retries(record, attempt) == ("handled", None)
    assert failures == []


def test_a_broker_outage_logs_each_kind_of_line_once_per_interval() -> None:
    limiter = RepeatLimiter(("aiokafka",), interval_s=3600)

    def line(name: str, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)

    storm = [line("aiokafka.conn", "Unable connect to %r") for _ in range(50)]
    passed = [r for r in storm if limiter.filter(r)]
    assert len(passed) == 1
    assert limiter.filter(line("aiokafka.cluster", "another kind"))
    assert all(limiter.filter(line("loadbay_platform.consumer", "ours")) for _ in range(5))


async def test_a_copy_whose_connection_is_lost_fails_within_seconds(
    settings: PlatformSettings,
) -> None:
    conn = await asyncpg.connect(settings.postgres.url)
    killer = await asyncpg.connect(settings.postgres.url)
    try:
        await conn.execute("CREATE TEMP TABLE sink (line text)")
        pid = conn.get_server_pid()
        row = b"x" * 1000 + b"\n"

        async def endless() -> AsyncIterator[bytes]:
            for _ in range(1_000_000):  # far more than the socket buffers take at once
                yield row * 1000

        async def kill_soon() -> None:
            await asyncio.sleep(1.0)
            await killer.execute("SELECT pg_terminate_backend($1)", pid)

        started = time.monotonic()
        task = asyncio.create_task(kill_soon())
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await watched(conn, conn.copy_to_table("sink", source=endless()))
        await task
        assert time.monotonic() - started < 30
    finally:
        conn.terminate()
        await killer.close()


def test_liveness_names_a_loop_that_stopped_turning() -> None:
    liveness = Liveness(stall_after_s=60)
    liveness.turn("the outbox relay")
    liveness.turn("the event consumer")
    assert liveness.stalled() == []
    # The relay's last turn was long ago (no sleeping: a busy machine must not matter).
    liveness._turns["the outbox relay"] -= 120
    (stalled,) = liveness.stalled()
    assert stalled.startswith("the outbox relay has not turned for")


async def test_healthz_fails_while_a_loop_is_stalled(settings: PlatformSettings) -> None:
    liveness = Liveness(stall_after_s=60)

    async def ready() -> None:
        return None

    app = create_app("test", settings.auth, ready, title="t", description="d", liveness=liveness)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        liveness.turn("the outbox relay")
        assert (await http.get("/healthz")).status_code == 200
        liveness._turns["the outbox relay"] -= 120  # long ago, without sleeping
        stalled = await http.get("/healthz")
    assert stalled.status_code == 503
    assert "the outbox relay has not turned" in stalled.json()["reason"]


async def test_an_api_call_during_a_database_outage_is_a_503(settings: PlatformSettings) -> None:
    async def ready() -> None:
        return None

    app = create_app("test", settings.auth, ready, title="t", description="d")

    @app.get("/needs-the-database")
    async def needs_the_database() -> None:
        raise asyncpg.CannotConnectNowError("the database system is starting up")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        answer = await http.get("/needs-the-database")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"


async def test_a_pool_with_a_lost_connection_still_closes(stack: Any) -> None:
    """A connection that is never given back (asyncpg can lose one when a task is cancelled
    as its acquire completes) must not keep a stopping service from exiting."""
    pool = await create_pool(PostgresSettings(url=stack.postgres_url), "public")
    lost = await pool.acquire()  # never released, as if its task had been cancelled
    assert await lost.fetchval("SELECT 1") == 1
    started = time.monotonic()
    await close_pool(pool, within_s=1.0)
    assert time.monotonic() - started < 30  # bounded; pool.close() alone waits for ever
    with pytest.raises(asyncpg.InterfaceError):  # cut off: the connection is gone
        await lost.fetchval("SELECT 1")
