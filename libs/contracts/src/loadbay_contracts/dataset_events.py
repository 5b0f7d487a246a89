"""Events about the life of a dataset, so other services know datasets without reading the
reload service's tables (the ingestion service checks bindings against them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from loadbay_contracts.envelope import Event
from loadbay_contracts.recipients import Recipient


class DatasetCreated(Event):
    """Emitted when a dataset is created (and again whenever its owner or authorized users
    change): the full current description, so a consumer can upsert it."""

    TYPE = "dataset.created"
    VERSION = "1.0"

    dataset_id: str
    domain: str
    name: str
    dataset_type: Literal["reload", "append"]
    file_type: str = "csv"
    owner: Recipient
    authorized_users: tuple[Recipient, ...] = Field(default=())

    def ordering_key(self) -> str:
        return self.dataset_id


class DatasetDeleted(Event):
    """Emitted when a dataset is deleted."""

    TYPE = "dataset.deleted"
    VERSION = "1.0"

    dataset_id: str
    domain: str
    name: str

    def ordering_key(self) -> str:
        return self.dataset_id
