"""Events of scheduled ingestion from S3 connections (Amorphic S3 connections semantics)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from loadbay_contracts.envelope import Event
from loadbay_contracts.recipients import Recipient


class IngestionFinished(Event):
    """Emitted when an ingestion run of a dataset binding ends, successfully or not."""

    TYPE = "ingestion.finished"

    run_id: str
    connection: str
    dataset: str  # <domain>/<name>
    version: str
    status: Literal["succeeded", "failed"]
    reason: str | None = None
    copied: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # "key: why" (same name/size/ETag, archive storage class)
    failed: tuple[str, ...] = ()  # "key: why"
    bytes_copied: int = 0
    skip_lz: bool = False
    started_at: datetime
    finished_at: datetime
    recipients: tuple[Recipient, ...]

    def ordering_key(self) -> str:
        return self.dataset
