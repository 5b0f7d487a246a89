"""Events about objects arriving in object storage."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from loadbay_contracts.envelope import Event

LandingSource = Literal["upload", "producer", "s3-notification", "watcher", "ingestion"]


class FileLanded(Event):
    """Emitted when an object has landed in the landing zone (LZ).

    Upstream ETL jobs may produce it themselves (see docs/events.md). The key is the object's
    key up to the dataset, `<domain>/<dataset>`, so that a batch's files and its `_SUCCESS`
    keep their order.
    """

    TYPE = "file.landed"
    VERSION = "1.0"

    bucket: str
    key: str = Field(
        description="<domain>/<dataset>/upload_date=<epoch>/<user_id>/<file_type>/<name>"
    )
    size: int = Field(ge=0)
    etag: str = Field(description="The object's ETag, without quotes")
    landed_at: datetime | None = None
    source: LandingSource = "producer"

    def ordering_key(self) -> str:
        return "/".join(self.key.split("/", 2)[:2])
