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


class ReloadLoaded(Event):
    """The answer to one reload.requested: the loader finished it, successfully or not.

    2.0 replaces `load.completed` 1.0 (renamed so that a request and its answer name the same
    thing; `request_type`, always "reload.requested", is gone)."""

    TYPE = "reload.loaded"
    VERSION = "2.0"

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
