"""Events of the bulk loader (Neptune-style graph loads)."""

from __future__ import annotations

from datetime import datetime

from loadbay_contracts.envelope import Event
from loadbay_contracts.recipients import Recipient


class GraphLoadFinished(Event):
    """Emitted when a bulk-loader job reaches a terminal status (LOAD_COMPLETED, LOAD_FAILED,
    LOAD_CANCELLED_BY_USER, LOAD_FAILED_BECAUSE_DEPENDENCY_NOT_SATISFIED, ...)."""

    TYPE = "graph.load.finished"

    load_id: str
    source: str
    format: str
    status: str
    total_records: int = 0
    total_duplicates: int = 0
    parsing_errors: int = 0
    datatype_mismatch_errors: int = 0
    insert_errors: int = 0
    first_errors: tuple[str, ...] = ()  # "CODE file#record: message", the first few
    started_at: datetime | None = None
    finished_at: datetime
    recipients: tuple[Recipient, ...]

    def ordering_key(self) -> str:
        return self.load_id
