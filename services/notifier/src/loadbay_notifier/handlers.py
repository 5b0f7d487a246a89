"""Thin event handlers of the notifier: render the email and record it, nothing more.

They run inside the consumer's transaction, beside the inbox row; the SMTP send happens later
in the sender loop, so a slow or absent mail relay never holds up (or rolls back) consumption.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import asyncpg

from loadbay_contracts import (
    DistributionFinished,
    Envelope,
    GraphLoadFinished,
    IngestionFinished,
    Recipient,
    ReloadFinished,
    ReloadRejected,
)
from loadbay_notifier import repository
from loadbay_notifier.templates import (
    RenderedEmail,
    render_distribution_finished,
    render_graph_load_finished,
    render_ingestion_finished,
    render_reload_finished,
    render_reload_rejected,
)

log = logging.getLogger(__name__)


async def on_reload_finished(
    conn: asyncpg.Connection, envelope: Envelope, event: ReloadFinished
) -> None:
    await record_email(conn, envelope, event.recipients, render_reload_finished(event))


async def on_reload_rejected(
    conn: asyncpg.Connection, envelope: Envelope, event: ReloadRejected
) -> None:
    await record_email(conn, envelope, event.recipients, render_reload_rejected(event))


async def on_distribution_finished(
    conn: asyncpg.Connection, envelope: Envelope, event: DistributionFinished
) -> None:
    # Every run gets its email, a fully successful one too: an email for every outcome.
    await record_email(conn, envelope, event.recipients, render_distribution_finished(event))


async def on_ingestion_finished(
    conn: asyncpg.Connection, envelope: Envelope, event: IngestionFinished
) -> None:
    # Every run gets its email, a fully successful one too.
    await record_email(conn, envelope, event.recipients, render_ingestion_finished(event))


async def on_graph_load_finished(
    conn: asyncpg.Connection, envelope: Envelope, event: GraphLoadFinished
) -> None:
    # Every load gets its email, a completed one too.
    await record_email(conn, envelope, event.recipients, render_graph_load_finished(event))


async def record_email(
    conn: asyncpg.Connection,
    envelope: Envelope,
    recipients: Iterable[Recipient],
    email: RenderedEmail,
) -> bool:
    """Record the email announcing `envelope`'s event, once per event id, and wake the
    sender when the transaction commits. False when there is nothing (new) to send."""
    addresses = _unique_addresses(recipients)
    if not addresses:
        log.warning("%s event %s names no recipients: no email", envelope.type, envelope.id)
        return False
    email_id = await repository.insert_email(
        conn,
        event_id=envelope.id,
        event_type=envelope.type,
        correlation_id=envelope.correlationid,
        recipients=addresses,
        subject=email.subject,
        body_text=email.text,
        body_html=email.html,
    )
    if email_id is None:
        log.info("event %s already has its email; not recorded again", envelope.id)
        return False
    await repository.notify_new_email(conn)
    return True


def _unique_addresses(recipients: Iterable[Recipient]) -> list[str]:
    """Addresses in order, each once (compared case-insensitively), blanks dropped."""
    seen: set[str] = set()
    addresses = []
    for r in recipients:
        address = r.email.strip()
        if address and address.lower() not in seen:
            seen.add(address.lower())
            addresses.append(address)
    return addresses


def handler_map() -> dict[type[Any], Any]:
    return {
        ReloadFinished: on_reload_finished,
        ReloadRejected: on_reload_rejected,
        DistributionFinished: on_distribution_finished,
        IngestionFinished: on_ingestion_finished,
        GraphLoadFinished: on_graph_load_finished,
    }
