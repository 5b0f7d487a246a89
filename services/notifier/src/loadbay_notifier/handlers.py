"""Thin event handlers of the notifier: render the email and record it, nothing more.

They run inside the consumer's transaction, beside the inbox row; the SMTP send happens later
in the sender loop, so a slow or absent mail relay never holds up (or rolls back) consumption.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

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


class Outcome(Protocol):
    """An outcome event: it names who is told of it."""

    @property
    def recipients(self) -> tuple[Recipient, ...]: ...


OutcomeT = TypeVar("OutcomeT", bound=Outcome)


def emailing(
    render: Callable[[OutcomeT], RenderedEmail],
) -> Callable[[asyncpg.Connection, Envelope, OutcomeT], Awaitable[None]]:
    """The handler of an outcome event: record the email `render` writes for it. Every
    outcome gets its email, a fully successful run or load too."""

    async def on_outcome(conn: asyncpg.Connection, envelope: Envelope, event: OutcomeT) -> None:
        await record_email(conn, envelope, event.recipients, render(event))

    # Named after the event (on_reload_finished, ...) in tracebacks and subscriber listings.
    on_outcome.__name__ = on_outcome.__qualname__ = render.__name__.replace("render_", "on_", 1)
    return on_outcome


on_reload_finished = emailing(render_reload_finished)
on_reload_rejected = emailing(render_reload_rejected)
on_distribution_finished = emailing(render_distribution_finished)
on_ingestion_finished = emailing(render_ingestion_finished)
on_graph_load_finished = emailing(render_graph_load_finished)


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
