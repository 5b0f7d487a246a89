"""What the ingestion API's routes answer (views of rows, downloads) and what they need
beyond the pool: the service's settings, its secret box, the endpoint policy and the worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends
from fastapi.responses import JSONResponse

from loadbay_ingestion.crypto import SecretBox
from loadbay_ingestion.endpoints import EndpointPolicy
from loadbay_ingestion.rows import Binding, Run, RunObject, Schedule
from loadbay_ingestion.settings import IngestionSettings
from loadbay_platform.dependencies import ServiceResources


def binding_view(b: Binding, connection: str, schedule: Schedule | None) -> dict[str, Any]:
    return {
        "dataset": b.dataset, "connection": connection, "dataset_type": b.dataset_type,
        "file_type": b.file_type, "directory_path": b.directory_path,
        "user_id": b.user_id, "created_at": b.created_at.isoformat(),
        "enabled": b.disabled_at is None, "disabled_reason": b.disabled_reason,
        "schedule": (
            {"job_type": schedule.job_type, "cron": schedule.cron,
             "next_run_at": schedule.next_run_at.isoformat()}
            if schedule else None
        ),
    }  # fmt: skip


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_view(r: Run, objects: list[RunObject] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": r.id, "status": r.status, "trigger": r.trigger,
        "triggered_by": r.triggered_by, "version": r.version, "skip_lz": r.skip_lz,
        "upload_date": r.upload_date, "reason": r.reason,
        "copied_count": r.copied_count, "skipped_count": r.skipped_count,
        "failed_count": r.failed_count, "bytes_copied": r.bytes_copied,
        "queued_at": iso(r.queued_at), "started_at": iso(r.started_at),
        "finished_at": iso(r.finished_at),
    }  # fmt: skip
    if objects is not None:
        landed = r.status != "failed"
        view["copied"] = [
            {"key": o.source_key, "size": o.size, "bucket": o.dest_bucket,
             "dest_key": o.dest_key}
            for o in objects if o.status == "copied" and landed
        ]  # fmt: skip
        for status in ("skipped", "failed"):
            view[status] = [
                {"key": o.source_key, "size": o.size, "storage_class": o.storage_class,
                 "reason": o.reason}
                for o in objects if o.status == status
            ]  # fmt: skip
    return view


def download(document: dict[str, Any], filename: str) -> JSONResponse:
    return JSONResponse(
        document, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@dataclass(frozen=True)
class ApiContext:
    settings: IngestionSettings
    box: SecretBox
    policy: EndpointPolicy
    wake: Callable[[], None]  # the run worker: look for work now


API_CONTEXT = "ingestion.api"


def _context(res: ServiceResources) -> ApiContext:
    return cast(ApiContext, res.extras[API_CONTEXT])


Context = Annotated[ApiContext, Depends(_context)]
