"""The distribution service: wiring only (see runs.py for the flow)."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any

from fastapi import FastAPI

from loadbay_contracts import Event, FileLanded, WorkspaceLoadCompleted
from loadbay_distribution import scheduler
from loadbay_distribution.handlers import Handlers
from loadbay_distribution.routes import ROUTERS
from loadbay_distribution.settings import DistributionSettings
from loadbay_platform.consumer import DeadLetterHook, Handler, RawHandler
from loadbay_platform.service import Resources


class DistributionService:
    name = "distribution"
    title = "loadbay distribution"
    description = (
        "Automated data distribution: full, incremental and delete loads of source files"
        " into many client workspaces (GoodData ADD v2 rules)."
    )
    migrations_package = "loadbay_distribution"

    def __init__(self, settings: DistributionSettings | None = None) -> None:
        self.settings = settings or DistributionSettings()

    def handlers(self, res: Resources) -> Mapping[type[Event], Handler]:
        h = Handlers(res)
        return {WorkspaceLoadCompleted: h.on_workspace_load_completed, FileLanded: h.on_file_landed}

    def raw_handlers(self, res: Resources) -> Mapping[str, RawHandler]:
        return {}

    def long_running(self) -> frozenset[type[Event]]:
        return frozenset()

    def dead_letter_hooks(self, res: Resources) -> Mapping[type[Event], DeadLetterHook]:
        return {}

    def background(self, res: Resources) -> list[Coroutine[Any, Any, None]]:
        return [scheduler.run_scheduler(res.pool, res.s3, self.settings.scheduler_interval_s)]

    def routes(self, app: FastAPI, res: Resources) -> None:
        for router in ROUTERS:
            app.include_router(router)
