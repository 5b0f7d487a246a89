"""The console's FastAPI app: sessions, sign-in, the pages of each product, its own assets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from loadbay_console import signin
from loadbay_console.backend import BackendError
from loadbay_console.pages import ROUTERS
from loadbay_console.sessions import SessionStore
from loadbay_console.settings import DEV_SESSION_SECRET, ConsoleSettings
from loadbay_console.web import HERE, CsrfRefused, SignInRequired, here, refusal_page, render
from loadbay_platform.metrics import record_http_metrics
from loadbay_platform.secrets import require_secret
from loadbay_platform.settings import PlatformSettings

# Probes and scrapes carry no session (and create none).
UNSESSIONED = {"/healthz", "/readyz", "/metrics"}


def create_app(
    settings: ConsoleSettings | None = None, platform: PlatformSettings | None = None
) -> FastAPI:
    settings = settings or ConsoleSettings()
    platform = platform or PlatformSettings()
    secret = settings.session_secret.get_secret_value()
    require_secret(
        secret,
        default=DEV_SESSION_SECRET,
        variable="LOADBAY_CONSOLE_SESSION_SECRET",
        dev_mode=platform.dev_mode,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.api_timeout_s) as http:
            app.state.http = http
            yield

    # No Swagger UI of its own: the console is pages, its API is the services'.
    app = FastAPI(title="loadbay console", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.dev_mode = platform.dev_mode
    app.state.auth = platform.auth
    app.state.urls = {
        "reload": settings.reload_url.rstrip("/"),
        "loader": settings.loader_url.rstrip("/"),
        "ingestion": settings.ingestion_url.rstrip("/"),
        "distribution": settings.distribution_url.rstrip("/"),
    }
    # Cookies go over HTTPS only when the console is served over it (or when told to).
    secure = settings.secure_cookies or settings.public_url.startswith("https://")
    sessions = SessionStore(secret, settings.session_ttl_s, secure=secure)
    app.state.sessions = sessions

    record_http_metrics(app, "console")

    @app.middleware("http")
    async def with_session(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith("/static/") or request.url.path in UNSESSIONED:
            return await call_next(request)
        session, new = sessions.of(request)
        request.state.session = session
        response = await call_next(request)
        if new or request.state.session is not session:
            sessions.set_cookie(response, request.state.session)
        # Pages show one user's data: never cached by a shared cache, never framed.
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
            + (" " + settings.oidc_issuer if settings.oidc_issuer else ""),
        )
        return response

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, exc: SignInRequired) -> Response:
        if request.headers.get("x-requested-with") == "XMLHttpRequest":
            return JSONResponse({"message": "sign in again"}, status_code=401)
        return Response(
            status_code=303, headers={"Location": "/signin?next=" + quote(exc.next_path)}
        )

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        return render(
            request,
            "error.html",
            status_code=403,
            message="This form is out of date or was not sent from this console: reload the"
            " page and try again.",
        )

    @app.exception_handler(HTTPException)
    async def not_a_page(request: Request, exc: HTTPException) -> Response:
        if exc.status_code != 404 or not hasattr(request.state, "session"):
            return JSONResponse({"message": exc.detail}, status_code=exc.status_code)
        return render(request, "error.html", status_code=404, message="There is no such page.")

    @app.exception_handler(BackendError)
    async def refused(request: Request, exc: BackendError) -> Response:
        if exc.status == 401 and not platform.dev_mode:  # the token expired: sign in again
            request.state.session.sign_out()
            return await sign_in_first(request, SignInRequired(here(request)))
        return refusal_page(request, exc)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "console"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        return {"status": "ready", "service": "console"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(signin.router)
    for router in ROUTERS:
        app.include_router(router)
    return app
