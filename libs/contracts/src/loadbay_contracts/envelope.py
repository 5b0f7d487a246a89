"""The CloudEvents 1.0 envelope every loadbay event travels in.

Wire format: structured mode. The Kafka record value is one JSON object holding the CloudEvents
attributes and the event under `data`; the record key is the event's ordering key. Two extension
attributes are loadbay's own: `correlationid` (follows a file from landing to email) and
`schemaversion` (`MAJOR.MINOR` of the data's contract; a consumer rejects an unknown major).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    """Base of every event's data. Subclasses set TYPE, VERSION and ordering_key()."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    TYPE: ClassVar[str]
    VERSION: ClassVar[str] = "1.0"

    def ordering_key(self) -> str:
        """Events with the same key keep their order (same Kafka partition)."""
        raise NotImplementedError

    @classmethod
    def topic(cls) -> str:
        return topic_for(cls.TYPE)


def topic_for(event_type: str) -> str:
    return f"loadbay.{event_type}"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


class Envelope(BaseModel):
    """A CloudEvents 1.0 event in structured mode."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    # Required on the wire: a redelivery must carry the same id, or it cannot be deduplicated.
    id: str = Field(min_length=1)
    source: str
    type: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    schemaversion: str
    correlationid: str
    data: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        source: str,
        correlation_id: str | None = None,
        subject: str | None = None,
    ) -> Self:
        return cls(
            id=str(uuid.uuid4()),
            source=source,
            type=event.TYPE,
            subject=subject,
            schemaversion=event.VERSION,
            correlationid=correlation_id or str(uuid.uuid4()),
            data=event.model_dump(mode="json"),
        )

    @property
    def major_version(self) -> int:
        return int(self.schemaversion.split(".", 1)[0])
