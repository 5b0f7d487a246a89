"""The waker: loops of one pool share one listening connection, each wakes only on its own
channel, and after the connection is lost (a database restart) the next wait listens again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from loadbay_platform.db import close_pool, create_pool
from loadbay_platform.settings import PostgresSettings
from loadbay_platform.waker import Waker
from tests.conftest import StackInfo, eventually

LONG_S = 60.0  # a wait that a notification must cut short


@pytest.fixture
async def pool(stack: StackInfo) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(PostgresSettings(url=stack.postgres_url), "public")
    try:
        yield created
    finally:
        await close_pool(created)


LISTENING = "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %' || $1 || '%'"


async def woken_within(waker: Waker, notify: asyncpg.Pool, channel: str) -> float:
    started = time.monotonic()
    waiting = asyncio.create_task(waker.wait(LONG_S))
    await asyncio.sleep(0.3)  # listening by now (the first wait starts listening)
    await notify.execute(f"NOTIFY {channel}")
    await asyncio.wait_for(waiting, LONG_S)
    return time.monotonic() - started


async def test_wakers_of_one_pool_share_one_connection_and_wake_on_their_channel(
    pool: asyncpg.Pool,
) -> None:
    first, second = "waker_a_" + str(id(pool)), "waker_b_" + str(id(pool))
    a, b = Waker(pool, first), Waker(pool, second)
    try:
        await a.wait(0.01)
        await b.wait(0.01)
        assert pool.get_size() - pool.get_idle_size() == 1  # one connection held: the listener
        assert await woken_within(a, pool, first) < LONG_S / 2
        assert await woken_within(b, pool, second) < LONG_S / 2
        # A notification on b's channel does not wake a.
        waiting = asyncio.create_task(a.wait(1.0))
        await asyncio.sleep(0.2)
        await pool.execute(f"NOTIFY {second}")
        started = time.monotonic()
        await waiting
        assert time.monotonic() - started > 0.5
    finally:
        await a.close()
        await b.close()
    assert pool.get_size() - pool.get_idle_size() == 0  # closed: the listener is given back


async def test_a_waker_listens_again_after_its_connection_is_lost(
    pool: asyncpg.Pool, stack: StackInfo
) -> None:
    channel = "waker_c_" + str(id(pool))
    waker = Waker(pool, channel)
    admin = await asyncpg.connect(stack.postgres_url)
    try:
        await waker.wait(0.01)
        (listener,) = await admin.fetch(LISTENING, channel)
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", listener["pid"])

        async def listening_again() -> bool:
            await waker.wait(0.05)
            return len(await admin.fetch(LISTENING, channel)) == 1

        await eventually(listening_again, within=30)
        assert await woken_within(waker, pool, channel) < LONG_S / 2
    finally:
        await admin.close()
        await waker.close()
