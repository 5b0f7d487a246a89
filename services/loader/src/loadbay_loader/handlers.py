"""Thin event handlers of the loader."""

from __future__ import annotations

import asyncpg

from loadbay_contracts import DatasetDeleted, Envelope, ReloadRequested, WorkspaceLoadRequested
from loadbay_loader import repository
from loadbay_loader.reload import loads as reload_loads
from loadbay_loader.workspace import loads as workspace_loads
from loadbay_loader.workspace import sources
from loadbay_platform.service import Resources


class Handlers:
    def __init__(self, res: Resources) -> None:
        self.res = res

    async def on_reload_requested(
        self, conn: asyncpg.Connection, envelope: Envelope, event: ReloadRequested
    ) -> None:
        await reload_loads.run_reload(conn, self.res.s3, event)

    async def on_workspace_load_requested(
        self, conn: asyncpg.Connection, envelope: Envelope, event: WorkspaceLoadRequested
    ) -> None:
        opener = sources.s3_opener(self.res.s3, event.bucket)
        await workspace_loads.load_into_workspaces(conn, opener, event)

    async def on_dataset_deleted(
        self, conn: asyncpg.Connection, envelope: Envelope, event: DatasetDeleted
    ) -> None:
        # Its table stays; a dataset of the same name created later may load into it.
        await repository.release_dataset_tables(conn, event.dataset_id)


async def on_unhandled_reload(
    conn: asyncpg.Connection, envelope: Envelope, event: ReloadRequested, reason: str
) -> None:
    await reload_loads.fail_unhandled(conn, event, reason)


async def on_unhandled_workspace_load(
    conn: asyncpg.Connection, envelope: Envelope, event: WorkspaceLoadRequested, reason: str
) -> None:
    await workspace_loads.fail_unhandled(conn, event, reason)
