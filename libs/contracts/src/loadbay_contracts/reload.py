"""Events of the reload flow (Amorphic "Reload" datasets)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from loadbay_contracts.datasets import DatasetSpec
from loadbay_contracts.envelope import Event
from loadbay_contracts.recipients import Recipient

Trigger = Literal["api", "success-file"]


class FileRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    etag: str
    size: int = Field(ge=0)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class ReloadRequested(Event):
    """Emitted when a reload execution starts: the loader replaces the dataset's rows with
    exactly the rows of `files`, in one transaction."""

    TYPE = "reload.requested"
    VERSION = "1.1"  # 1.1 adds `mode`

    execution_id: str
    dataset: DatasetSpec
    files: tuple[FileRef, ...] = Field(min_length=1)
    dlz_bucket: str
    dlz_prefix: str
    triggered_by: str
    trigger: Trigger
    # replace: the dataset holds exactly these files' rows (Reload datasets);
    # append: their rows are added (Append datasets; a file is never loaded twice).
    mode: Literal["replace", "append"] = "replace"

    def ordering_key(self) -> str:
        return self.dataset.dataset_id


class ReloadRejected(Event):
    """Emitted when a `_SUCCESS` trigger arrives while a reload of the dataset runs: nothing
    starts, the batch's files stay pending, and the user is told."""

    TYPE = "reload.rejected"

    dataset_id: str
    domain: str
    dataset_name: str
    batch: str
    running_execution_id: str
    reason: str
    recipients: tuple[Recipient, ...]

    def ordering_key(self) -> str:
        return self.dataset_id


class ReloadFinished(Event):
    """Emitted when a reload execution reaches a terminal status (succeeded or failed)."""

    TYPE = "reload.finished"

    execution_id: str
    dataset_id: str
    domain: str
    dataset_name: str
    status: Literal["succeeded", "failed"]
    reason: str | None = None
    files: tuple[str, ...]
    rows: int = 0
    bytes: int = 0
    started_at: datetime
    finished_at: datetime
    triggered_by: str
    recipients: tuple[Recipient, ...]

    def ordering_key(self) -> str:
        return self.dataset_id
