"""Running one more instance of a service in the test process, HTTP only.

The HTTP tests of the platform (hostile input, the OpenAPI fuzz, start-up checks) need a
service's real routes, not a second copy of its event consumer or background workers competing
with the instance its own tests run (tests/ingestion): `HttpOnly` keeps a definition's
migrations and routes and drops the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any

from fastapi import FastAPI

from loadbay_contracts import Event
from loadbay_platform.consumer import DeadLetterHook, Handler, RawHandler
from loadbay_platform.service import Resources, RunningService, ServiceDefinition, run_service
from loadbay_platform.settings import PlatformSettings


class HttpOnly:
    def __init__(self, inner: ServiceDefinition) -> None:
        self.inner = inner
        self.name = inner.name
        self.title = inner.title
        self.description = inner.description

    @property
    def migrations_package(self) -> str:
        return self.inner.migrations_package

    def handlers(self, res: Resources) -> Mapping[type[Event], Handler]:
        return {}

    def raw_handlers(self, res: Resources) -> Mapping[str, RawHandler]:
        return {}

    def dead_letter_hooks(self, res: Resources) -> Mapping[type[Event], DeadLetterHook]:
        return {}

    def long_running(self) -> frozenset[type[Event]]:
        return frozenset()

    def background(self, res: Resources) -> list[Coroutine[Any, Any, None]]:
        return []

    def routes(self, app: FastAPI, res: Resources) -> None:
        self.inner.routes(app, res)


@contextlib.asynccontextmanager
async def serving(definition: ServiceDefinition, settings: PlatformSettings) -> AsyncIterator[str]:
    """Run `definition` until the block ends; yields its base URL."""
    state = RunningService()
    task = asyncio.create_task(run_service(definition, settings, port=0, state=state))
    ready = asyncio.create_task(state.ready.wait())
    try:
        await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # it ended before listening: show why
        assert state.ready.is_set(), f"{definition.name} did not start within 30 s"
        yield f"http://127.0.0.1:{state.port}"
    finally:
        ready.cancel()
        task.cancel()
        await asyncio.gather(task, ready, return_exceptions=True)
