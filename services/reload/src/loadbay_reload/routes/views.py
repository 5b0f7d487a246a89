"""What the reload API's routes take and answer: path parameters, bodies and views of rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import Path
from pydantic import BaseModel, Field

from loadbay_contracts.datasets import IDENTIFIER
from loadbay_platform.auth import Principal
from loadbay_reload import datasets
from loadbay_reload.datasets import Dataset
from loadbay_reload.rows import Execution, LandedFile

# Path parameters are checked before they reach the database: a NUL or a 10 MB name is a 422.
Domain = Annotated[str, Path(pattern=IDENTIFIER.pattern, description="The dataset's domain")]
Name = Annotated[str, Path(pattern=IDENTIFIER.pattern, description="The dataset's name")]
ExecutionId = Annotated[str, Path(pattern=r"^[0-9A-Za-z-]{1,64}$")]
FileId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class FileView(BaseModel):
    id: int
    key: str
    name: str
    batch: str
    size: int
    etag: str
    status: str
    error: str | None
    landed_by: str
    landing_source: str
    execution_id: str | None
    landed_at: datetime
    updated_at: datetime


class ExecutionView(BaseModel):
    id: str
    dataset: str
    status: str
    trigger: str
    triggered_by: str
    batch: str | None
    reason: str | None
    error: dict[str, Any] | None
    files: list[str]
    file_count: int
    rows: int
    bytes: int
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None


class FileSelection(BaseModel):
    file_ids: list[FileId] | None = Field(
        default=None,
        max_length=10_000,
        description="Pending files to act on; omit to process all pending files",
    )


class ProcessAccepted(BaseModel):
    execution_id: str
    files: list[str]


def file_view(r: LandedFile) -> FileView:
    return FileView.model_validate(r, from_attributes=True)


def execution_view(r: Execution) -> ExecutionView:
    finished = r.finished_at
    return ExecutionView(
        id=r.id,
        dataset=f"{r.domain}/{r.dataset_name}",
        status=r.status,
        trigger=r.trigger,
        triggered_by=r.triggered_by,
        batch=r.batch,
        reason=r.reason,
        error=r.error,
        files=list(r.files),
        file_count=r.file_count,
        rows=r.rows,
        bytes=r.bytes,
        started_at=r.started_at,
        finished_at=finished,
        duration_s=(finished - r.started_at).total_seconds() if finished else None,
    )


async def load_dataset(pool: asyncpg.Pool, domain: str, name: str, principal: Principal) -> Dataset:
    """The dataset the caller may see (404 otherwise)."""
    async with pool.acquire() as conn:
        return await datasets.get_dataset(conn, domain, name, principal)
