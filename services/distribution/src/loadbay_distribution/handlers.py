"""Thin event handlers of the distribution service."""

from __future__ import annotations

import logging

import asyncpg

from loadbay_contracts import Envelope, FileLanded, WorkspaceLoadCompleted
from loadbay_distribution import repository, runs
from loadbay_platform.errors import Conflict
from loadbay_platform.service import Resources

log = logging.getLogger(__name__)


class Handlers:
    def __init__(self, res: Resources) -> None:
        self.res = res

    async def on_workspace_load_completed(
        self, conn: asyncpg.Connection, envelope: Envelope, event: WorkspaceLoadCompleted
    ) -> None:
        await runs.record_outcome(conn, event)

    async def on_file_landed(
        self, conn: asyncpg.Connection, envelope: Envelope, event: FileLanded
    ) -> None:
        """A file landing in a data product's source location starts a run (unless one is
        in progress: that run or the next one picks the file up)."""
        for product in await repository.all_products(conn):
            if event.bucket == product.bucket and event.key.startswith(product.prefix):
                try:
                    async with conn.transaction():
                        await runs.start_run(conn, self.res.s3, product, "file-landed", "event")
                except Conflict:
                    log.info("%s landed while a run of %s is in progress", event.key,
                             product.name)  # fmt: skip
