"""The loader service, the data plane: wiring only."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any

from fastapi import FastAPI

from loadbay_contracts import DatasetDeleted, Event, ReloadRequested, WorkspaceLoadRequested
from loadbay_loader import handlers as handlers_module
from loadbay_loader.graph import api as graph_api
from loadbay_loader.graph import load_runner
from loadbay_loader.handlers import Handlers
from loadbay_loader.reload import dlz
from loadbay_loader.settings import LoaderSettings
from loadbay_loader.streaming import limits
from loadbay_platform.consumer import DeadLetterHook, Handler, RawHandler
from loadbay_platform.service import Resources


class LoaderService:
    name = "loader"
    title = "loadbay loader"
    description = (
        "Streams files from object storage into the warehouse, and runs the"
        " Neptune-compatible bulk loader (/loader) into the graph store."
    )
    migrations_package = "loadbay_loader"

    def __init__(self, settings: LoaderSettings | None = None) -> None:
        self.settings = settings or LoaderSettings()
        limits.configure(self.settings.input_limits())

    def handlers(self, res: Resources) -> Mapping[type[Event], Handler]:
        handlers = Handlers(res)
        return {
            ReloadRequested: handlers.on_reload_requested,
            WorkspaceLoadRequested: handlers.on_workspace_load_requested,
            DatasetDeleted: handlers.on_dataset_deleted,
        }

    def raw_handlers(self, res: Resources) -> Mapping[str, RawHandler]:
        return {}

    def long_running(self) -> frozenset[type[Event]]:
        # Loads: long work, run from the work queue off the poll loop.
        return frozenset({ReloadRequested, WorkspaceLoadRequested})

    def dead_letter_hooks(self, res: Resources) -> Mapping[type[Event], DeadLetterHook]:
        # A request the loader cannot handle still ends its execution (failed, with why).
        return {
            ReloadRequested: handlers_module.on_unhandled_reload,
            WorkspaceLoadRequested: handlers_module.on_unhandled_workspace_load,
        }

    def background(self, res: Resources) -> list[Coroutine[Any, Any, None]]:
        return [
            dlz.run_publisher(res.pool, res.s3),
            load_runner.run_worker(res, self.settings),
        ]

    def routes(self, app: FastAPI, res: Resources) -> None:
        graph_api.add_routes(app, res, self.settings)
