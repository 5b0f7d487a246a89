"""The reload service: wiring only (see reloads.py for the flow)."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any

from fastapi import FastAPI

from loadbay_contracts import Event
from loadbay_platform.consumer import DeadLetterHook, Handler, RawHandler
from loadbay_platform.service import Resources
from loadbay_reload import watcher
from loadbay_reload.handlers import Handlers, handler_map
from loadbay_reload.rejects import dead_letterer
from loadbay_reload.routes import ROUTERS
from loadbay_reload.settings import ReloadSettings


class ReloadService:
    name = "reload"
    title = "loadbay reload"
    description = (
        "Reload and Append datasets: land files in the landing zone and process them; a run of"
        " a Reload dataset replaces its rows atomically, a run of an Append dataset adds each"
        " file's rows once."
    )
    migrations_package = "loadbay_reload"

    def __init__(self, settings: ReloadSettings | None = None) -> None:
        self.settings = settings or ReloadSettings()

    def handlers(self, res: Resources) -> Mapping[type[Event], Handler]:
        return handler_map(Handlers(res))

    def raw_handlers(self, res: Resources) -> Mapping[str, RawHandler]:
        return {self.settings.s3_notifications_topic: Handlers(res).on_s3_notification}

    def long_running(self) -> frozenset[type[Event]]:
        return frozenset()

    def dead_letter_hooks(self, res: Resources) -> Mapping[type[Event], DeadLetterHook]:
        return {}

    def background(self, res: Resources) -> list[Coroutine[Any, Any, None]]:
        if not self.settings.watcher_enabled:
            return []
        return [
            watcher.watch(
                res.pool,
                res.s3,
                res.settings.s3.lz_bucket,
                self.name,
                dead_letterer(res.broker, self.name),
                self.settings.watch_interval_s,
            )
        ]

    def routes(self, app: FastAPI, res: Resources) -> None:
        for router in ROUTERS:
            app.include_router(router)
