"""The ingestion service: wiring only (see runs.py for the flow)."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any

from fastapi import FastAPI

from loadbay_contracts import Event
from loadbay_contracts.dataset_events import DatasetCreated, DatasetDeleted
from loadbay_ingestion import datasets, scheduler
from loadbay_ingestion.crypto import SecretBox
from loadbay_ingestion.endpoints import EndpointPolicy
from loadbay_ingestion.routes import ROUTERS
from loadbay_ingestion.routes.views import API_CONTEXT, ApiContext
from loadbay_ingestion.runs import RunContext
from loadbay_ingestion.settings import DEV_SECRET_KEY, IngestionSettings
from loadbay_ingestion.worker import RunWorker
from loadbay_platform.consumer import DeadLetterHook, Handler, RawHandler
from loadbay_platform.secrets import require_secret
from loadbay_platform.service import Resources
from loadbay_platform.settings import PlatformSettings

_WORKER = "ingestion.worker"


class IngestionService:
    name = "ingestion"
    title = "loadbay ingestion"
    description = (
        "S3 connections (access keys or bucket policy, versions 1.6/1.7/1.8), bindings of"
        " datasets to a remote path and file type, DataIngestion schedules and throttled,"
        " resumable ingestion runs into the LZ (or the DLZ with skip-LZ)."
    )
    migrations_package = "loadbay_ingestion"

    def __init__(
        self, settings: IngestionSettings | None = None, *, dev_mode: bool | None = None
    ) -> None:
        """Refuses (InsecureConfiguration) a missing or built-in encryption key outside dev
        mode (`dev_mode`, by default LOADBAY_DEV_MODE)."""
        self.settings = settings or IngestionSettings()
        keys = self.settings.encryption_keys()
        require_secret(
            keys[0] if keys else None,
            default=DEV_SECRET_KEY,
            variable=(
                "LOADBAY_INGESTION_SECRET_KEY (or LOADBAY_INGESTION_SECRET_KEYS, newest first)"
            ),
            dev_mode=PlatformSettings().dev_mode if dev_mode is None else dev_mode,
        )
        self.box = SecretBox(keys or [DEV_SECRET_KEY])
        self.policy = EndpointPolicy.from_setting(self.settings.allowed_endpoints)

    def worker(self, res: Resources) -> RunWorker:
        """The replica's run worker, built once per Resources (routes wake it)."""
        found = res.extras.get(_WORKER)
        if found is None:
            ctx = RunContext(
                res.pool, res.s3, res.settings.s3, self.settings, self.box, self.policy
            )
            found = res.extras[_WORKER] = RunWorker(ctx)
        assert isinstance(found, RunWorker)
        return found

    def handlers(self, res: Resources) -> Mapping[type[Event], Handler]:
        return {
            DatasetCreated: datasets.on_dataset_created,
            DatasetDeleted: datasets.on_dataset_deleted,
        }

    def raw_handlers(self, res: Resources) -> Mapping[str, RawHandler]:
        return {}

    def long_running(self) -> frozenset[type[Event]]:
        return frozenset()

    def dead_letter_hooks(self, res: Resources) -> Mapping[type[Event], DeadLetterHook]:
        return {}

    def background(self, res: Resources) -> list[Coroutine[Any, Any, None]]:
        worker = self.worker(res)
        return [
            worker.run(),
            scheduler.run_scheduler(res.pool, self.settings.scheduler_interval_s, worker.wake),
        ]

    def routes(self, app: FastAPI, res: Resources) -> None:
        res.extras[API_CONTEXT] = ApiContext(
            self.settings, self.box, self.policy, self.worker(res).wake
        )
        for router in ROUTERS:
            app.include_router(router)
