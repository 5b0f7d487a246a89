"""Wake a loop when PostgreSQL says there is work (LISTEN/NOTIFY), or after a timeout anyway.

A loop that works off a table waits between passes with `await waker.wait(poll_s)`: a NOTIFY
on the channel (sent in the transaction that wrote the work) ends the wait at once, so the
poll interval only bounds how late work is seen if a notification is lost (a database
restart drops the listening connection; the waker listens again on the next wait).
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
        self.pool = pool
        self.channel = channel
        self._event = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._listening = asyncio.Lock()  # waiters share one listening connection

    async def wait(self, timeout_s: float) -> None:
        """Return when notified or after `timeout_s`; every waiter wakes on one notification."""
        await self._listen()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)
        self._event.clear()

    def wake(self) -> None:
        """Wake the waiters from inside the process (work found without a notification)."""
        self._event.set()

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        with contextlib.suppress(Exception):
            await listener.remove_listener(self.channel, self._on_notify)
        with contextlib.suppress(Exception):
            await self.pool.release(listener)

    async def _listen(self) -> None:
        async with self._listening:
            if not self._still_listening():
                await self.close()
                await self._start_listening()

    def _still_listening(self) -> bool:
        if self._listener is None:
            return False
        try:
            return not self._listener.is_closed()
        except asyncpg.InterfaceError:  # the pool took it back when the connection broke
            return False

    async def _start_listening(self) -> None:
        try:
            listener = await self.pool.acquire()
        except DATABASE_ERRORS as exc:  # TimeoutError included
            log.warning("cannot listen on %s (%r); polling meanwhile", self.channel, exc)
            return
        try:
            await listener.add_listener(self.channel, self._on_notify)
        except BaseException as exc:  # cancelled included: never leave the connection out
            with contextlib.suppress(Exception):
                await self.pool.release(listener)
            if not isinstance(exc, DATABASE_ERRORS):
                raise
            log.warning("cannot listen on %s (%r); polling meanwhile", self.channel, exc)
            return
        self._listener = listener

    def _on_notify(self, *_: object) -> None:
        self._event.set()
