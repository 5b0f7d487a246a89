"""Wake a loop when PostgreSQL says there is work (LISTEN/NOTIFY), or after a timeout anyway.

Every loop that works off a table (the work queue, the outbox relay, the DLZ publisher, the
email sender, the bulk-load runner) waits between passes with `await waker.wait(poll_s)`: a
NOTIFY on its channel (sent in the transaction that wrote the work) ends the wait at once, so
the poll interval only bounds how late work is seen if a notification is lost.

The wakers of one pool share one listening connection (a process does not hold a connection
per loop just to listen). A database restart breaks it; the next wait listens again, on every
channel, and meanwhile the loops poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from loadbay_platform.outages import DATABASE_ERRORS

log = logging.getLogger(__name__)


class Waker:
    def __init__(self, pool: asyncpg.Pool, channel: str) -> None:
        self.channel = channel
        self._event = asyncio.Event()
        self._listener = _Listener.of(pool)

    async def listen(self) -> None:
        """Listen from now on: call before a loop's first look at its table, so that work
        written between that look and the first `wait` is not missed until the poll."""
        await self._listener.listen(self)

    async def wait(self, timeout_s: float) -> None:
        """Return when notified or after `timeout_s`; every waiter wakes on one notification."""
        await self._listener.listen(self)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)
        self._event.clear()

    def wake(self) -> None:
        """Wake the waiters (on a notification, or work found without one)."""
        self._event.set()

    async def close(self) -> None:
        await self._listener.forget(self)


class _Listener:
    """The one listening connection of a pool, shared by every Waker on it."""

    _of_pool: dict[int, _Listener] = {}

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.conn: asyncpg.Connection | None = None
        self.wakers: dict[str, set[Waker]] = {}
        self.listening: set[str] = set()  # channels LISTENed on `conn`
        self.lock = asyncio.Lock()

    @classmethod
    def of(cls, pool: asyncpg.Pool) -> _Listener:
        found = cls._of_pool.get(id(pool))
        if found is None or found.pool is not pool:
            found = cls._of_pool[id(pool)] = _Listener(pool)
        return found

    async def listen(self, waker: Waker) -> None:
        async with self.lock:
            self.wakers.setdefault(waker.channel, set()).add(waker)
            if not self._alive():
                await self._drop()
                self.conn = await self._acquire()
            if self.conn is None:
                return  # polling until the database is back
            for channel in set(self.wakers) - self.listening:
                try:
                    await self.conn.add_listener(channel, self._on_notify)
                except DATABASE_ERRORS as exc:
                    log.warning("cannot listen on %s (%r); polling meanwhile", channel, exc)
                    await self._drop()
                    return
                self.listening.add(channel)

    async def forget(self, waker: Waker) -> None:
        async with self.lock:
            wakers = self.wakers.get(waker.channel, set())
            wakers.discard(waker)
            if not wakers:
                self.wakers.pop(waker.channel, None)
                if self.conn is not None and waker.channel in self.listening:
                    with contextlib.suppress(Exception):
                        await self.conn.remove_listener(waker.channel, self._on_notify)
                self.listening.discard(waker.channel)
            if not self.wakers:
                await self._drop()
                self._of_pool.pop(id(self.pool), None)

    def _alive(self) -> bool:
        if self.conn is None:
            return False
        try:
            return not self.conn.is_closed()
        except asyncpg.InterfaceError:  # the pool took it back when the connection broke
            return False

    async def _acquire(self) -> asyncpg.Connection | None:
        try:
            return await self.pool.acquire()
        except DATABASE_ERRORS as exc:
            log.warning("cannot listen for work (%r); polling meanwhile", exc)
            return None

    async def _drop(self) -> None:
        conn, self.conn = self.conn, None
        channels, self.listening = self.listening, set()
        if conn is None:
            return
        try:
            for channel in channels:
                with contextlib.suppress(Exception):
                    await conn.remove_listener(channel, self._on_notify)
        finally:  # cancelled or not, the connection goes back (a pool cannot close without it)
            with contextlib.suppress(Exception):
                await self.pool.release(conn)

    def _on_notify(self, _conn: object, _pid: object, channel: str, _payload: object) -> None:
        for waker in self.wakers.get(channel, ()):
            waker.wake()
