"""Events of the loader, the data plane."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from loadbay_contracts.envelope import Event


class LoadError(BaseModel):
    """Where a load failed: enough for a person to find and fix the value."""

    model_config = ConfigDict(frozen=True)

    file: str
    line: int | None = None
    column: str | None = None
    value: str | None = None
    message: str


class FileResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    rows: int
    bytes: int


class LoadCompleted(Event):
    """Emitted when the loader finished a requested load, successfully or not."""

    TYPE = "load.completed"

    request_type: Literal["reload.requested"]
    request_id: str
    dataset_id: str
    status: Literal["succeeded", "failed"]
    rows: int = 0
    bytes: int = 0
    files: tuple[FileResult, ...] = ()
    error: LoadError | None = None
    started_at: datetime
    finished_at: datetime

    def ordering_key(self) -> str:
        return self.dataset_id
