"""The reload service's rows of landed files and executions, as the repository returns them
(a dataset is `datasets.Dataset`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loadbay_platform.rows import JSON_COLUMN


@dataclass(frozen=True, kw_only=True)
class LandedFile:
    id: int
    dataset_id: str
    bucket: str
    key: str
    name: str
    batch: str
    etag: str
    size: int
    landed_by: str
    landing_source: str
    status: str
    error: str | None
    execution_id: str | None
    landed_at: datetime
    updated_at: datetime


@dataclass(frozen=True, kw_only=True)
class Execution:
    """An execution with its dataset's domain and name and the keys of its files."""

    id: str
    dataset_id: str
    domain: str
    dataset_name: str
    status: str
    trigger: str
    triggered_by: str
    triggered_by_email: str
    batch: str | None
    reason: str | None
    error: dict[str, Any] | None = field(metadata=JSON_COLUMN)
    files: list[str]
    file_count: int
    rows: int
    bytes: int
    started_at: datetime
    finished_at: datetime | None
