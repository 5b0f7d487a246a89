"""The bulk-loader HTTP API, shaped as Amazon Neptune's, one router per resource: loads
(`/loader`), the fast reset (`/system`) and reads of what was loaded (`/graph/...`,
`/rdf/...`). Who may do what: access.py."""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from loadbay_loader.graph.access import LoaderAccess, check_startup
from loadbay_loader.graph.errors import NeptuneError
from loadbay_loader.graph.routes import loads, reads, system
from loadbay_loader.graph.routes.neptune import LoaderApi, error_response, guard_error_body
from loadbay_loader.settings import LoaderSettings
from loadbay_platform.service import Resources

log = logging.getLogger(__name__)

ROUTERS: tuple[APIRouter, ...] = (loads.router, system.router, reads.router)


def install(app: FastAPI, res: Resources, settings: LoaderSettings) -> None:
    """The routers, with what they depend on and Neptune's error shape for every error."""
    check_startup(settings, res.settings)
    app.state.resources = res
    app.state.loader_api = LoaderApi(
        settings=settings,
        access=LoaderAccess.of(settings, res.settings),
        region=settings.region or res.settings.s3.region,
    )
    # What the platform's request guard refuses (oversized, NUL, too deep) in Neptune's shape.
    app.state.error_body = guard_error_body
    app.add_exception_handler(NeptuneError, _neptune_error)
    app.add_exception_handler(Exception, _internal_failure)
    for router in ROUTERS:
        app.include_router(router)


async def _neptune_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NeptuneError)
    headers: dict[str, str] | None = getattr(exc, "headers", None)
    return error_response(exc.code, exc.message, exc.http_status, headers)


async def _internal_failure(_: Request, exc: Exception) -> JSONResponse:
    log.exception("bulk-loader API: unexpected error", exc_info=exc)
    return error_response("InternalFailureException", "The request processing has failed", 500)
