"""Every service's /docs (Swagger UI), with its script and styles served by the service itself:
it works on an air-gapped cluster, where FastAPI's default page (which loads them from a CDN)
stays blank. The assets are those the `fastapi-offline` wheel ships. There is no /redoc: its
footer loads a logo from Redocly's CDN."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
# The page shows images only from the service itself (Swagger UI's validator badge is remote).
LOCAL_IMAGES = {"Content-Security-Policy": "img-src 'self' data:"}


def install_docs(app: FastAPI) -> None:
    """/docs and its assets under /docs-assets (the app must have docs_url=None)."""
    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")))

    def prefix(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        page = get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - API docs",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        )
        page.headers.update(LOCAL_IMAGES)
        return page
