"""loadbay's event contracts: typed pydantic models shared by producers and consumers."""

from loadbay_contracts.dataset_events import DatasetCreated, DatasetDeleted
from loadbay_contracts.datasets import ColumnSpec, CsvOptionsSpec, DatasetSpec
from loadbay_contracts.distribution import (
    DistributionFinished,
    WorkspaceColumn,
    WorkspaceLoadCompleted,
    WorkspaceLoadRequested,
    WorkspaceLoadResult,
    WorkspaceTarget,
)
from loadbay_contracts.envelope import Envelope, Event, dead_letter_topic, topic_for
from loadbay_contracts.files import FileLanded
from loadbay_contracts.graph import GraphLoadFinished
from loadbay_contracts.ingestion import IngestionFinished
from loadbay_contracts.loads import FileResult, LoadError, ReloadLoaded
from loadbay_contracts.recipients import Recipient
from loadbay_contracts.registry import EVENT_TYPES
from loadbay_contracts.reload import (
    FileRef,
    ReloadFinished,
    ReloadRejected,
    ReloadRequested,
)

__all__ = [
    "EVENT_TYPES",
    "ColumnSpec",
    "CsvOptionsSpec",
    "DatasetCreated",
    "DatasetDeleted",
    "DatasetSpec",
    "DistributionFinished",
    "Envelope",
    "Event",
    "FileLanded",
    "FileRef",
    "FileResult",
    "GraphLoadFinished",
    "IngestionFinished",
    "LoadError",
    "Recipient",
    "ReloadFinished",
    "ReloadLoaded",
    "ReloadRejected",
    "ReloadRequested",
    "WorkspaceColumn",
    "WorkspaceLoadCompleted",
    "WorkspaceLoadRequested",
    "WorkspaceLoadResult",
    "WorkspaceTarget",
    "dead_letter_topic",
    "topic_for",
]
