"""The console's front page: each product, with how many things the user has in it."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loadbay_console.backend import Backend, BackendError
from loadbay_console.web import Api, render

router = APIRouter()


async def _count(api: Backend, service: str, path: str, key: str | None = None) -> dict[str, Any]:
    try:
        found = await api.get(service, path)
    except BackendError as exc:
        return {"error": exc.message}
    items = found.get("payload", {}).get(key, []) if key else found
    return {"count": len(items) if isinstance(items, list) else 0}


@router.get("/")
async def home(request: Request, api: Api) -> Response:
    datasets, loads, connections, products = await asyncio.gather(
        _count(api, "reload", "/datasets"),
        _count(api, "loader", "/loader", "loadIds"),
        _count(api, "ingestion", "/connections"),
        _count(api, "distribution", "/data-products"),
    )
    return render(
        request,
        "home.html",
        nav="home",
        cards=[
            (
                "datasets",
                "Reload datasets",
                "Upload files, process them, follow executions.",
                datasets,
            ),
            ("loads", "Bulk loads", "Load graph and RDF files from object storage.", loads),
            (
                "connections",
                "S3 connections",
                "Copy objects from remote buckets on a schedule.",
                connections,
            ),
            ("products", "Data products", "Distribute datasets into client workspaces.", products),
        ],
    )
