"""S3 connections (ingestion): create and test a connection, upgrade and downgrade its version,
bind datasets to it, schedule them (DataIngestion), run now, and each run's copied, skipped and
failed objects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loadbay_console.backend import BackendError, seg
from loadbay_console.web import Api, Form, back_with, form_text, render

router = APIRouter()
VERSIONS = ("1.6", "1.7", "1.8")


def _page(name: str) -> str:
    return f"/connections/{seg(name)}"


def _binding(dataset: str) -> str:
    domain, _, name = dataset.partition("/")
    return f"/bindings/{seg(domain)}/{seg(name)}"


async def _act(request: Request, back: str, call: Any, done: str) -> Response:
    """Carry out an API call from a form, and come back with its outcome."""
    try:
        await call
    except BackendError as exc:
        if exc.status >= 500:
            raise
        return back_with(request, back, "error", exc.message)
    return back_with(request, back, "ok", done)


@router.get("/connections")
async def list_connections(request: Request, api: Api) -> Response:
    found = await api.get("ingestion", "/connections")
    return render(
        request, "connections.html", nav="connections", connections=found, versions=VERSIONS
    )


@router.post("/connections")
async def create_connection(request: Request, api: Api, form: Form) -> Response:
    body: dict[str, Any] = {
        "name": form_text(form, "name"),
        "description": form_text(form, "description"),
        "bucket": form_text(form, "bucket"),
        "region": form_text(form, "region") or "us-east-1",
        "access_type": form_text(form, "access_type") or "access_keys",
        "version": form_text(form, "version") or "1.8",
        "authorized_users": form_text(form, "users").split(),
    }
    for field in ("endpoint_url", "access_key_id", "secret_access_key", "kms_key_arn"):
        if form_text(form, field):
            body[field] = form_text(form, field)
    try:
        created = await api.post("ingestion", "/connections", body)
    except BackendError as exc:
        if exc.status >= 500:
            raise
        return back_with(request, "/connections", "error", exc.message)
    return back_with(
        request, _page(created["name"]), "ok", f"Connection {created['name']} created."
    )


@router.get("/connections/{name}")
async def show_connection(request: Request, api: Api, name: str) -> Response:
    connection = await api.get("ingestion", _page(name))
    bindings = await api.get("ingestion", _page(name) + "/bindings")
    for binding in bindings:
        try:
            binding["runs"] = await api.get(
                "ingestion", _binding(binding["dataset"]) + "/runs", limit=5
            )
        except BackendError as exc:
            binding["runs"], binding["runs_error"] = [], exc.message
    running = any(r["status"] in ("queued", "running") for b in bindings for r in b["runs"])
    return render(
        request,
        "connection.html",
        nav="connections",
        connection=connection,
        bindings=bindings,
        running=running,
        test=request.state.session.notes.pop("connection_test", None),
    )


@router.post("/connections/{name}/test")
async def test_connection(request: Request, api: Api, form: Form, name: str) -> Response:
    result = await api.post("ingestion", _page(name) + "/test")
    request.state.session.notes["connection_test"] = result
    if result.get("ok"):
        return back_with(
            request, _page(name), "ok", f"loadbay can list and read s3://{result['bucket']}."
        )
    return back_with(
        request, _page(name), "error", f"Test failed: {result.get('reason') or 'no access'}"
    )


@router.post("/connections/{name}/version")
async def change_version(request: Request, api: Api, form: Form, name: str) -> Response:
    action = "upgrade" if form_text(form, "action") == "upgrade" else "downgrade"
    version = form_text(form, "version")
    call = api.post("ingestion", _page(name) + f"/{action}", {"version": version})
    return await _act(request, _page(name), call, f"Connection {action}d to version {version}.")


@router.post("/connections/{name}/bindings")
async def bind(request: Request, api: Api, form: Form, name: str) -> Response:
    body = {
        "dataset": form_text(form, "dataset"),
        "file_type": form_text(form, "file_type") or "csv",
        "directory_path": form_text(form, "directory_path"),
    }
    call = api.post("ingestion", _page(name) + "/bindings", body)
    return await _act(request, _page(name), call, f"Dataset {body['dataset']} bound.")


@router.post("/connections/{name}/bindings/schedule")
async def schedule(request: Request, api: Api, form: Form, name: str) -> Response:
    path = _binding(form_text(form, "dataset")) + "/schedule"
    cron = form_text(form, "cron")
    if not cron:
        return await _act(request, _page(name), api.delete("ingestion", path), "Schedule removed.")
    call = api.put("ingestion", path, {"job_type": "DataIngestion", "cron": cron})
    return await _act(request, _page(name), call, f"Scheduled: {cron} (UTC).")


@router.post("/connections/{name}/bindings/run")
async def run_now(request: Request, api: Api, form: Form, name: str) -> Response:
    call = api.post("ingestion", _binding(form_text(form, "dataset")) + "/runs")
    return await _act(request, _page(name), call, "Run queued: it starts when a slot is free.")


@router.post("/connections/{name}/bindings/unbind")
async def unbind(request: Request, api: Api, form: Form, name: str) -> Response:
    dataset = form_text(form, "dataset")
    call = api.delete("ingestion", _binding(dataset))
    return await _act(request, _page(name), call, f"Dataset {dataset} unbound.")


@router.post("/connections/{name}/delete")
async def delete_connection(request: Request, api: Api, form: Form, name: str) -> Response:
    try:
        await api.delete("ingestion", _page(name))
    except BackendError as exc:
        if exc.status >= 500:
            raise
        return back_with(request, _page(name), "error", exc.message)
    return back_with(request, "/connections", "ok", f"Connection {name} deleted.")


@router.get("/connections/{name}/policy/{kind}")
async def policy(request: Request, api: Api, name: str, kind: str) -> Response:
    """The bucket policy (or KMS key policy) to attach for a bucket_policy connection."""
    if kind not in ("bucket-policy", "kms-key-policy"):
        return back_with(request, _page(name), "error", "No such policy.")
    document = await api.get("ingestion", _page(name) + f"/{kind}")
    return render(
        request, "policy.html", nav="connections", name=name, kind=kind, document=document
    )


@router.get("/connections/runs/{run_id}")
async def show_run(request: Request, api: Api, run_id: str) -> Response:
    run = await api.get("ingestion", f"/runs/{seg(run_id)}")
    return render(request, "connection_run.html", nav="connections", run=run)
