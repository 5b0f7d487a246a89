"""The run worker of one replica: claims queued (and stale) runs while slots are free,
executes them, and keeps their heartbeat so other replicas know they are alive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from loadbay_ingestion import connections, repository, runs
from loadbay_ingestion.metrics import RUNS_ACTIVE
from loadbay_ingestion.runs import RunContext

log = logging.getLogger(__name__)


class RunWorker:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        """Look for work now (a run was queued, or a slot freed)."""
        self._wake.set()

    async def run(self) -> None:
        try:  # after a key rotation: every replica tries, each row changes once
            await connections.reseal_secrets(self.ctx.pool, self.ctx.box)
        except Exception:
            log.exception("resealing access keys with the newest key failed")
        heartbeats = asyncio.create_task(self._heartbeats())
        try:
            while True:
                try:
                    await self.claim_and_start()
                except Exception:  # retried at the next tick
                    log.exception("ingestion worker tick failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.ctx.settings.poll_interval_s)
                self._wake.clear()
        finally:
            heartbeats.cancel()
            tasks = [heartbeats, *self._tasks.values()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def claim_and_start(self) -> int:
        started = 0
        settings = self.ctx.settings
        while len(self._tasks) < settings.replica_max_runs:
            async with self.ctx.pool.acquire() as conn, conn.transaction():
                run = await runs.claim(
                    conn, self.worker_id, settings.max_concurrent_loads, settings.stale_after_s
                )
            if run is None:
                break
            if run.id in self._tasks:  # cannot happen while heartbeats flow; be safe
                continue
            self._tasks[run.id] = asyncio.create_task(self._execute(run.id))
            started += 1
        return started

    async def _execute(self, run_id: str) -> None:
        RUNS_ACTIVE.inc()
        try:
            await runs.execute(self.ctx, run_id)
        finally:
            self._tasks.pop(run_id, None)
            RUNS_ACTIVE.dec()
            self.wake()  # a slot is free

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.settings.heartbeat_interval_s)
            if not self._tasks:
                continue
            try:
                async with self.ctx.pool.acquire() as conn:
                    await repository.heartbeat(conn, list(self._tasks), self.worker_id)
            except Exception:
                log.exception("ingestion heartbeat failed")
