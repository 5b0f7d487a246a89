"""Events of automated data distribution (GoodData ADD v2 semantics)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from loadbay_contracts.datasets import ColumnType
from loadbay_contracts.envelope import Event
from loadbay_contracts.recipients import Recipient


class WorkspaceColumn(BaseModel):
    """A dataset column, named with its documented prefix (cp__, a__, l__, f__, r__, d__)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^(cp|a|l|f|r|d)__[a-z0-9_]{1,60}$")
    type: ColumnType = "text"


class WorkspaceTarget(BaseModel):
    """One client workspace a file loads into, and how."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    client_id: str
    schema_name: str = Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    mode: Literal["full", "inc"]


class WorkspaceLoadRequested(Event):
    """Emitted when a distribution run needs one source file loaded into client workspaces:
    the loader reads the file once and, per workspace, in one transaction, deletes and loads
    (full: rewrite with the rows whose x__deleted is false; inc: upsert those, delete the
    x__deleted ones by connection point, else fact table grain, else all attributes).

    2.0 replaces `load.requested` 1.0 (renamed to pair with workspace.load.completed; the
    data is unchanged)."""

    TYPE = "workspace.load.requested"
    VERSION = "2.0"

    request_id: str
    run_id: str
    data_product_id: str
    dataset: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    columns: tuple[WorkspaceColumn, ...] = Field(min_length=1)
    grain: tuple[str, ...] = ()  # fact table grain (a__ columns), when there is no cp__
    bucket: str
    keys: tuple[str, ...] = Field(min_length=1)  # all parts of one timestamp load together
    timestamp: str = Field(pattern=r"^\d{14}$")
    targets: tuple[WorkspaceTarget, ...] = Field(min_length=1)

    def ordering_key(self) -> str:
        return self.data_product_id


class WorkspaceLoadResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    workspace_id: str
    status: Literal["succeeded", "failed"]
    rows_upserted: int = 0
    rows_deleted: int = 0
    reason: str | None = None


class WorkspaceLoadCompleted(Event):
    """The answer to one workspace.load.requested: one result per target workspace."""

    TYPE = "workspace.load.completed"

    request_id: str
    run_id: str
    data_product_id: str
    dataset: str
    timestamp: str
    results: tuple[WorkspaceLoadResult, ...]
    unknown_client_ids: tuple[str, ...] = ()  # x__client_id values that match no target
    started_at: datetime
    finished_at: datetime

    def ordering_key(self) -> str:
        return self.data_product_id


class DistributionFinished(Event):
    """Emitted when a distribution run ends; failures and workspaces that need manual
    recovery are listed for the notifier."""

    TYPE = "distribution.finished"

    run_id: str
    data_product_id: str
    data_product: str
    status: Literal["succeeded", "failed", "partially_failed"]
    loads: int
    failures: tuple[str, ...] = ()  # "workspace/dataset: reason"
    needs_recovery: tuple[str, ...] = ()  # "workspace/dataset"
    problems: tuple[str, ...] = ()  # misnamed files, unknown client ids, ...
    started_at: datetime
    finished_at: datetime
    recipients: tuple[Recipient, ...]

    def ordering_key(self) -> str:
        return self.data_product_id
