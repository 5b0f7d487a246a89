"""Who an outcome event is for: the people its email goes to (the notifier needs nothing else)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Recipient(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_id: str
    email: str
