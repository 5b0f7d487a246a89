"""Bulk loads (the Neptune-style loader): start a load, the list with each load's status, and
one load's feed counts, failed feeds and error pages."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loadbay_console.backend import Backend, BackendError, seg
from loadbay_console.web import Api, Form, back_with, form_text, render

router = APIRouter()
FORMATS = ("csv", "opencypher", "ntriples", "nquads", "rdfxml", "turtle")
MODES = ("AUTO", "NEW", "RESUME")
PARALLELISM = ("HIGH", "MEDIUM", "LOW", "OVERSUBSCRIBE")
# The role Neptune asks for; loadbay's loader reads with its own credentials and checks only
# the ARN's shape, so the form fills a placeholder in.
DEFAULT_ROLE = "arn:aws:iam::000000000000:role/loadbay-loader"
LISTED = 25
ERRORS_PER_PAGE = 20


async def _status(api: Backend, load_id: str) -> dict[str, Any]:
    try:
        answer = await api.get("loader", f"/loader/{seg(load_id)}")
    except BackendError as exc:
        return {"id": load_id, "error": exc.message}
    return {"id": load_id, **answer["payload"]["overallStatus"]}


@router.get("/loads")
async def list_loads(request: Request, api: Api) -> Response:
    answer = await api.get("loader", "/loader", limit=LISTED)
    ids = answer["payload"]["loadIds"]
    loads = await asyncio.gather(*(_status(api, i) for i in ids))
    return render(
        request,
        "loads.html",
        nav="loads",
        loads=loads,
        formats=FORMATS,
        modes=MODES,
        parallelism=PARALLELISM,
        default_role=DEFAULT_ROLE,
        running=any(
            load.get("status") in ("LOAD_IN_PROGRESS", "LOAD_NOT_STARTED", "LOAD_IN_QUEUE")
            for load in loads
        ),
    )


@router.post("/loads")
async def start_load(request: Request, api: Api, form: Form) -> Response:
    body: dict[str, Any] = {
        "source": form_text(form, "source"),
        "format": form_text(form, "format"),
        "iamRoleArn": form_text(form, "iamRoleArn") or DEFAULT_ROLE,
        "region": form_text(form, "region") or "us-east-1",
        "mode": form_text(form, "mode") or "AUTO",
        "parallelism": form_text(form, "parallelism") or "HIGH",
        "failOnError": "TRUE" if form.get("failOnError") else "FALSE",
        "queueRequest": "TRUE" if form.get("queueRequest") else "FALSE",
    }
    parser = {k: form_text(form, k) for k in ("baseUri", "namedGraphUri") if form_text(form, k)}
    if parser:
        body["parserConfiguration"] = parser
    dependencies = form_text(form, "dependencies").replace(",", " ").split()
    if dependencies:
        body["dependencies"] = dependencies
    try:
        answer = await api.post("loader", "/loader", body)
    except BackendError as exc:
        if exc.status >= 500:
            raise
        return back_with(request, "/loads", "error", exc.message)
    load_id = answer["payload"]["loadId"]
    return back_with(request, f"/loads/{seg(load_id)}", "ok", f"Load {load_id} started.")


@router.get("/loads/{load_id}")
async def show_load(request: Request, api: Api, load_id: str, page: int = 1) -> Response:
    page = max(1, min(page, 10_000))
    answer = await api.get(
        "loader",
        f"/loader/{seg(load_id)}",
        details="true",
        errors="true",
        page=page,
        errorsPerPage=ERRORS_PER_PAGE,
    )
    payload = answer["payload"]
    counts: dict[str, int] = {}
    for entry in payload.get("feedCount", []):
        counts.update(entry)
    status = payload["overallStatus"]
    return render(
        request,
        "load.html",
        nav="loads",
        load_id=load_id,
        status=status,
        counts=counts,
        failed=payload.get("failedFeeds", []),
        errors=payload.get("errors", {}),
        page=page,
        per_page=ERRORS_PER_PAGE,
        running=status["status"] in ("LOAD_IN_PROGRESS", "LOAD_NOT_STARTED", "LOAD_IN_QUEUE"),
    )


@router.post("/loads/{load_id}/cancel")
async def cancel_load(request: Request, api: Api, form: Form, load_id: str) -> Response:
    back = f"/loads/{seg(load_id)}"
    try:
        await api.delete("loader", back.replace("/loads/", "/loader/", 1))
    except BackendError as exc:
        if exc.status >= 500:
            raise
        return back_with(request, back, "error", exc.message)
    return back_with(request, back, "ok", "Load cancelled.")
