"""The notifier's rows, as the repository returns them: an email as recorded, and one claimed
for an attempt to send it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, kw_only=True)
class Email:
    """An email with its delivery status (its bodies are not read back)."""

    id: int
    event_id: str
    event_type: str
    correlation_id: str
    recipients: list[str]
    subject: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class ClaimedEmail:
    """An email taken for one attempt to send it (`attempts` counts this one)."""

    id: int
    event_id: str
    event_type: str
    correlation_id: str
    recipients: list[str]
    subject: str
    body_text: str
    body_html: str
    attempts: int
    created_at: datetime
