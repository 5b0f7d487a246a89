"""The HTTP surface every service shares: health, readiness, metrics and request metrics, the
request guard (size limits, NUL, deep JSON), the shared error handlers, and the OpenAPI
document's security scheme and error responses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from loadbay_platform.auth import TokenVerifier
from loadbay_platform.docs import install_docs
from loadbay_platform.http_errors import install_error_handlers
from loadbay_platform.liveness import Liveness
from loadbay_platform.metrics import record_http_metrics
from loadbay_platform.openapi import install_openapi
from loadbay_platform.request_guard import RequestGuard, form_routes
from loadbay_platform.settings import AuthSettings, HttpSettings

ReadinessCheck = Callable[[], Awaitable[str | None]]


def create_app(
    service: str,
    auth: AuthSettings,
    readiness: ReadinessCheck,
    *,
    title: str,
    description: str,
    http: HttpSettings | None = None,
    liveness: Liveness | None = None,
) -> FastAPI:
    """A FastAPI app with /healthz, /readyz and /metrics; `readiness` returns None when ready,
    else what is not ready yet; /healthz fails when a loop of `liveness` has stalled."""
    # /docs with local assets (docs.py), not FastAPI's CDN ones; no /redoc (it needs a CDN).
    app = FastAPI(
        title=title, description=description, version="0.1.0", docs_url=None, redoc_url=None
    )
    app.state.token_verifier = TokenVerifier(auth)
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    # Added before the metrics middleware, so it runs inside it: its refusals are counted too.
    app.add_middleware(
        RequestGuard, settings=http or HttpSettings(), takes_uploads=form_routes(app)
    )

    record_http_metrics(app, service)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        stalled = liveness.stalled() if liveness is not None else []
        if stalled:
            return JSONResponse(
                {"status": "stalled", "service": service, "reason": "; ".join(stalled)},
                status_code=503,
            )
        return JSONResponse({"status": "ok", "service": service})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        problem = await readiness()
        if problem is None:
            return JSONResponse({"status": "ready", "service": service})
        return JSONResponse({"status": "not ready", "reason": problem}, status_code=503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
