"""Emails: those recorded for the caller, with their delivery status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from loadbay_notifier import repository
from loadbay_notifier.rows import Email
from loadbay_platform.auth import CurrentPrincipal
from loadbay_platform.dependencies import ServiceResources

router = APIRouter(tags=["emails"])


class EmailView(BaseModel):
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


def email_view(r: Email) -> EmailView:
    view = EmailView.model_validate(r, from_attributes=True)
    if view.status != "pending":  # only a pending email has a next attempt
        view.next_attempt_at = None
    return view


@router.get("/emails")
async def list_emails(
    principal: CurrentPrincipal,
    res: ServiceResources,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[EmailView]:
    """The most recent emails addressed to the caller (by the token's email), newest
    first, with their delivery status."""
    async with res.pool.acquire(timeout=res.settings.postgres.acquire_timeout_s) as conn:
        rows = await repository.list_emails_to(conn, principal.email, limit)
    return [email_view(r) for r in rows]
