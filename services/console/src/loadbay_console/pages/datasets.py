"""Reload datasets, as the Amorphic seed's UI has them: the list and Create dataset, Upload
Data, the FileStatus tabs, the Pending files page (select, Process Files, Permanently Delete
File(s)), the executions with View All Executions, and one execution (refreshing while it
runs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import FormData, UploadFile

from loadbay_console.backend import BackendError, seg
from loadbay_console.web import (
    Api,
    Form,
    back_with,
    checked_header,
    form_list,
    form_text,
    redirect,
    render,
)

router = APIRouter()
STATUSES = ("pending", "processing", "completed")
COLUMN_TYPES = (
    "text",
    "integer",
    "bigint",
    "numeric",
    "boolean",
    "date",
    "timestamp",
    "timestamptz",
)
DELIMITERS = {"comma": ",", "tab": "\t", "semicolon": ";", "pipe": "|"}
# Rows of the schema table on a new form (JavaScript adds more).
BLANK_COLUMNS = 3


def _path(domain: str, name: str) -> str:
    return f"/datasets/{seg(domain)}/{seg(name)}"


@router.get("/datasets")
async def list_datasets(request: Request, api: Api) -> Response:
    datasets = await api.get("reload", "/datasets")
    return render(request, "datasets.html", nav="datasets", datasets=datasets)


@router.get("/datasets/new")
async def new_dataset(request: Request, api: Api) -> Response:
    return render(request, "dataset_new.html", **_form_context(FormData()))


@router.post("/datasets/new")
async def create_dataset(request: Request, api: Api, form: Form) -> Response:
    body, problem = dataset_body(form)
    if problem is None:
        try:
            created = await api.post("reload", "/datasets", body)
        except BackendError as exc:
            if exc.status >= 500:
                raise
            problem = exc.message
        else:
            path = _path(created["domain"], created["name"])
            return back_with(
                request, path, "ok", f"Dataset {created['domain']}/{created['name']} created."
            )
    return render(
        request, "dataset_new.html", status_code=400, problem=problem, **_form_context(form)
    )


# The Create dataset form's fields kept as typed when the API refuses it.
FORM_FIELDS = (
    "domain", "name", "dataset_type", "description", "delimiter", "quote", "escape", "users",
)  # fmt: skip


def _form_context(form: FormData) -> dict[str, Any]:
    rows = zip(
        form_list(form, "column_name"),
        form_list(form, "column_type"),
        form_list(form, "column_required"),
        strict=False,
    )
    columns = [{"name": n, "type": t, "required": r == "yes"} for n, t, r in rows]
    blank = {"name": "", "type": "text", "required": False}
    return {
        "nav": "datasets",
        "values": {k: form_text(form, k) for k in FORM_FIELDS},
        "columns": columns or [blank] * BLANK_COLUMNS,
        "column_types": COLUMN_TYPES,
        "delimiters": DELIMITERS,
    }


def dataset_body(form: FormData) -> tuple[dict[str, Any], str | None]:
    """The API's DatasetCreate from the form, or what the person must fix first. Everything
    else (names, types, characters) is the API's to check: its message is shown as it is."""
    columns = []
    rows = zip(
        form_list(form, "column_name"),
        form_list(form, "column_type"),
        form_list(form, "column_required"),
        strict=False,
    )
    for name, kind, required in rows:
        if name.strip():
            columns.append({"name": name.strip(), "type": kind, "nullable": required != "yes"})
    if not columns:
        return {}, "Give the dataset at least one column."
    users = []
    for number, line in enumerate(form_text(form, "users").splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if len(words) != 2:
            return {}, f"Authorized users, line {number}: write a user id and an email address."
        users.append({"user_id": words[0], "email": words[1]})
    delimiter = DELIMITERS.get(form_text(form, "delimiter"), form_text(form, "delimiter") or ",")
    csv: dict[str, Any] = {"delimiter": delimiter, "quote": form_text(form, "quote") or '"'}
    if form_text(form, "escape"):
        csv["escape"] = form_text(form, "escape")
    body = {
        "domain": form_text(form, "domain"),
        "name": form_text(form, "name"),
        "dataset_type": form_text(form, "dataset_type") or "reload",
        "file_type": "csv",
        "description": form_text(form, "description"),
        "columns": columns,
        "csv": csv,
        "authorized_users": users,
    }
    return body, None


@router.get("/datasets/{domain}/{name}")
async def show_dataset(
    request: Request, api: Api, domain: str, name: str, status: str = ""
) -> Response:
    path = _path(domain, name)
    dataset = await api.get("reload", path)
    files = await api.get("reload", path + "/files")
    executions = await api.get("reload", path + "/executions", limit=5)
    counts = {s: sum(1 for f in files if f["status"] == s) for s in STATUSES}
    shown = [f for f in files if f["status"] == status] if status in STATUSES else files
    return render(
        request,
        "dataset.html",
        nav="datasets",
        dataset=dataset,
        files=shown,
        all_count=len(files),
        counts=counts,
        status=status if status in STATUSES else "",
        executions=executions,
        running=[e for e in executions if e["status"] == "running"],
    )


@router.get("/datasets/{domain}/{name}/pending")
async def pending_files(request: Request, api: Api, domain: str, name: str) -> Response:
    path = _path(domain, name)
    dataset = await api.get("reload", path)
    files = await api.get("reload", path + "/files", status="pending")
    executions = await api.get("reload", path + "/executions", limit=1)
    running = [e for e in executions if e["status"] == "running"]
    return render(
        request, "pending.html", nav="datasets", dataset=dataset, files=files, running=running
    )


@router.get("/datasets/{domain}/{name}/upload")
async def upload_page(request: Request, api: Api, domain: str, name: str) -> Response:
    dataset = await api.get("reload", _path(domain, name))
    return render(request, "upload.html", nav="datasets", dataset=dataset)


def upload_size(request: Request) -> None:
    """Refuse by Content-Length before the form is parsed (spooled to disk)."""
    limit = request.app.state.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the upload is over the limit of {limit} bytes")


@router.post("/datasets/{domain}/{name}/upload", dependencies=[Depends(upload_size)])
async def upload(request: Request, api: Api, form: Form, domain: str, name: str) -> Response:
    """Upload Data: the files stream on to the reload API. The page's script sends them with
    XMLHttpRequest (for its progress bar) and gets JSON; a plain form post gets a page."""
    path = _path(domain, name)
    uploads = [u for u in form.getlist("files") if isinstance(u, UploadFile) and u.filename]
    wants_json = request.headers.get("x-requested-with") == "XMLHttpRequest"
    if not uploads:
        if wants_json:
            return JSONResponse({"message": "choose one or more files first"}, status_code=400)
        return back_with(request, path + "/upload", "error", "Choose one or more files first.")
    files = [
        ("files", (u.filename or "", u.file, u.content_type or "application/octet-stream"))
        for u in uploads
    ]
    try:
        landed = await api.call("reload", "POST", path + "/files", files=files, timeout_s=3600)
    except BackendError as exc:
        if wants_json:
            return JSONResponse({"message": exc.message}, status_code=exc.status)
        return back_with(request, path + "/upload", "error", exc.message)
    text = f"Uploaded {len(landed)} file(s): they are pending until you process them."
    request.state.session.flash("ok", text)
    if wants_json:
        return JSONResponse({"files": [f["name"] for f in landed], "next": path + "/pending"})
    return redirect(path + "/pending")


@router.post(
    "/datasets/{domain}/{name}/upload-stream",
    dependencies=[Depends(upload_size), Depends(checked_header)],
)
async def upload_stream(request: Request, api: Api, domain: str, name: str) -> Response:
    """Upload Data from the page's script: the multipart body streams on to the reload API as
    it arrives, unparsed (nothing is kept on the console's disk or in its memory), so the
    progress bar follows the files into the landing zone."""
    path = _path(domain, name)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return JSONResponse({"message": "send the files as multipart/form-data"}, 400)
    headers = {"Content-Type": content_type}
    if request.headers.get("content-length", "").isdigit():
        headers["Content-Length"] = request.headers["content-length"]
    try:
        landed = await api.call(
            "reload", "POST", path + "/files", content=request.stream(), headers=headers,
            timeout_s=3600,
        )  # fmt: skip
    except BackendError as exc:
        return JSONResponse({"message": exc.message}, status_code=exc.status)
    text = f"Uploaded {len(landed)} file(s): they are pending until you process them."
    request.state.session.flash("ok", text)
    return JSONResponse({"files": [f["name"] for f in landed], "next": path + "/pending"})


@router.post("/datasets/{domain}/{name}/process")
async def process(request: Request, api: Api, form: Form, domain: str, name: str) -> Response:
    """Process Files: the selected pending files (the API says why not, e.g. a reload runs)."""
    path = _path(domain, name)
    ids = _file_ids(form)
    if not ids:
        return back_with(request, path + "/pending", "error", "Select the files to process.")
    try:
        accepted = await api.post("reload", path + "/process", {"file_ids": ids})
    except BackendError as exc:
        if exc.status >= 500:
            raise
        refused = f"Process Files refused: {exc.message}"
        return back_with(request, path + "/pending", "error", refused)
    text = f"Reload started for {len(accepted['files'])} file(s)."
    return back_with(request, f"/executions/{seg(accepted['execution_id'])}", "ok", text)


@router.post("/datasets/{domain}/{name}/delete-files")
async def delete_files(request: Request, api: Api, form: Form, domain: str, name: str) -> Response:
    """Permanently Delete File(s): a page to confirm first, then the API deletes them."""
    path = _path(domain, name)
    ids = _file_ids(form)
    if not ids:
        return back_with(request, path + "/pending", "error", "Select the files to delete.")
    if form_text(form, "confirmed") != "yes":
        dataset = await api.get("reload", path)
        pending = await api.get("reload", path + "/files", status="pending")
        chosen = [f for f in pending if f["id"] in ids]
        return render(request, "confirm_delete.html", nav="datasets", dataset=dataset, files=chosen)
    try:
        deleted = await api.post("reload", path + "/files/delete", {"file_ids": ids})
    except BackendError as exc:
        if exc.status >= 500:
            raise
        return back_with(request, path + "/pending", "error", exc.message)
    names = ", ".join(f["name"] for f in deleted)
    return back_with(request, path + "/pending", "ok", f"Permanently deleted {names}.")


def _file_ids(form: FormData) -> list[int]:
    return [int(v) for v in form_list(form, "file_id") if v.isdigit() and 0 < len(v) < 19]


@router.get("/datasets/{domain}/{name}/executions")
async def all_executions(request: Request, api: Api, domain: str, name: str) -> Response:
    path = _path(domain, name)
    dataset = await api.get("reload", path)
    executions = await api.get("reload", path + "/executions", limit=1000)
    return render(
        request, "executions.html", nav="datasets", dataset=dataset, executions=executions
    )


@router.get("/executions/{execution_id}")
async def show_execution(request: Request, api: Api, execution_id: str) -> Response:
    execution = await api.get("reload", f"/executions/{seg(execution_id)}")
    domain, name = execution["dataset"].split("/", 1)
    files = await api.get("reload", _path(domain, name) + "/files")
    mine = [f for f in files if f["execution_id"] == execution["id"]]
    return render(
        request,
        "execution.html",
        nav="datasets",
        execution=execution,
        domain=domain,
        name=name,
        files=mine,
    )
