"""The notifier service: wiring only (handlers record emails, the sender delivers them)."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any

from fastapi import FastAPI

from loadbay_contracts import Event
from loadbay_notifier.handlers import handler_map
from loadbay_notifier.routes import ROUTERS
from loadbay_notifier.sender import EmailSender
from loadbay_notifier.settings import NotifierSettings
from loadbay_platform.consumer import DeadLetterHook, Handler, RawHandler
from loadbay_platform.service import Resources


class NotifierService:
    name = "notifier"
    title = "loadbay notifier"
    description = (
        "Emails for every outcome: one email per event, text and HTML, sent over SMTP with"
        " retries, and a record of what was sent."
    )
    migrations_package = "loadbay_notifier"

    def __init__(self, settings: NotifierSettings | None = None) -> None:
        self.settings = settings or NotifierSettings()

    def handlers(self, res: Resources) -> Mapping[type[Event], Handler]:
        return handler_map()

    def raw_handlers(self, res: Resources) -> Mapping[str, RawHandler]:
        return {}

    def long_running(self) -> frozenset[type[Event]]:
        return frozenset()

    def dead_letter_hooks(self, res: Resources) -> Mapping[type[Event], DeadLetterHook]:
        return {}

    def background(self, res: Resources) -> list[Coroutine[Any, Any, None]]:
        sender = EmailSender(
            res.pool,
            res.settings.smtp,
            self.settings,
            acquire_timeout_s=res.settings.postgres.acquire_timeout_s,
        )
        return [sender.run()]

    def routes(self, app: FastAPI, res: Resources) -> None:
        for router in ROUTERS:
            app.include_router(router)
