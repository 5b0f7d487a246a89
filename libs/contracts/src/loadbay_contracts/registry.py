"""Every event type loadbay knows, by its CloudEvents `type`."""

from __future__ import annotations

from loadbay_contracts.dataset_events import DatasetCreated, DatasetDeleted
from loadbay_contracts.distribution import (
    DistributionFinished,
    WorkspaceLoadCompleted,
    WorkspaceLoadRequested,
)
from loadbay_contracts.envelope import Event
from loadbay_contracts.files import FileLanded
from loadbay_contracts.graph import GraphLoadFinished
from loadbay_contracts.ingestion import IngestionFinished
from loadbay_contracts.loads import ReloadLoaded
from loadbay_contracts.reload import ReloadFinished, ReloadRejected, ReloadRequested

EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        FileLanded,
        DatasetCreated,
        DatasetDeleted,
        ReloadRequested,
        ReloadRejected,
        ReloadFinished,
        ReloadLoaded,
        WorkspaceLoadRequested,
        WorkspaceLoadCompleted,
        DistributionFinished,
        IngestionFinished,
        GraphLoadFinished,
    )
}
