"""What the distribution API's routes take (path parameters, bodies) and answer (views)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, Field

from loadbay_distribution.products import (
    CLIENT_ID,
    DATASET_NAME,
    NAME,
)
from loadbay_distribution.rows import Product, Run, RunResult

# Path parameters are checked before they reach the database: a NUL or a huge value is a 422.
ProductName = Annotated[str, Path(pattern=NAME, description="The data product's name")]
ClientId = Annotated[str, Path(pattern=CLIENT_ID)]
DatasetName = Annotated[str, Path(pattern=DATASET_NAME)]
RunId = Annotated[str, Path(pattern=r"^[0-9A-Za-z-]{1,64}$")]


class ScheduleSet(BaseModel):
    cron: str = Field(max_length=200)


class SegmentCreate(BaseModel):
    name: str = Field(pattern=NAME)


def product_view(r: Product, segments: list[str]) -> dict[str, Any]:
    return {
        "id": r.id, "name": r.name, "bucket": r.bucket, "prefix": r.prefix,
        "owner_id": r.owner_id, "segments": segments, "created_at": r.created_at.isoformat(),
    }  # fmt: skip


def run_view(r: Run, results: list[RunResult] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": r.id, "status": r.status, "trigger": r.trigger,
        "triggered_by": r.triggered_by, "problems": list(r.problems),
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
    }  # fmt: skip
    if results is not None:
        view["results"] = [
            {"client_id": x.client_id, "dataset": x.dataset, "timestamp": x.timestamp,
             "file": x.file, "mode": x.mode, "status": x.status,
             "rows_upserted": x.rows_upserted, "rows_deleted": x.rows_deleted,
             "reason": x.reason}
            for x in results
        ]  # fmt: skip
    return view
