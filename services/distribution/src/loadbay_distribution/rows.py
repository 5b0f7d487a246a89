"""The distribution service's rows, as the repository returns them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loadbay_platform.rows import JSON_COLUMN


@dataclass(frozen=True, kw_only=True)
class Product:
    id: str
    name: str
    bucket: str
    prefix: str
    owner_id: str
    owner_email: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class Workspace:
    id: str
    data_product_id: str
    segment: str
    client_id: str
    schema_name: str
    created_at: datetime
    # Per dataset: lsts, failure_streak, last_failed_ts, last_error.
    states: dict[str, dict[str, Any]] = field(metadata=JSON_COLUMN)


@dataclass(frozen=True, kw_only=True)
class Dataset:
    data_product_id: str
    name: str
    segment: str
    columns: list[dict[str, str]] = field(metadata=JSON_COLUMN)
    grain: list[str]


@dataclass(frozen=True, kw_only=True)
class LoadState:
    """A workspace of a segment with its load state for one dataset (none yet: no lsts)."""

    workspace_id: str
    client_id: str
    schema_name: str
    segment: str
    created_at: datetime
    lsts: str | None
    failure_streak: int
    last_failed_ts: str | None


@dataclass(frozen=True, kw_only=True)
class Run:
    id: str
    data_product_id: str
    status: str
    trigger: str
    triggered_by: str
    plan: dict[str, Any] = field(metadata=JSON_COLUMN)
    problems: list[str]
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class RunLoad:
    """One load a run requested: a file of a dataset into some of the workspaces."""

    request_id: str
    run_id: str
    dataset: str
    timestamp: str
    keys: list[str]
    targets: list[dict[str, str]] = field(metadata=JSON_COLUMN)
    done: bool


@dataclass(frozen=True, kw_only=True)
class RunResult:
    run_id: str
    workspace_id: str
    client_id: str
    dataset: str
    timestamp: str
    file: str
    mode: str
    status: str
    rows_upserted: int
    rows_deleted: int
    reason: str | None
    recorded_at: datetime


@dataclass(frozen=True, kw_only=True)
class Schedule:
    data_product_id: str
    cron: str
    next_run_at: datetime
