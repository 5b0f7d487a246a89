"""The datasets ingestion knows, from the reload service's `dataset.created` and
`dataset.deleted` events (consumed exactly once: the inbox commits with the effect).

A deleted dataset's bindings are disabled with the reason: a queued or running run fails
with it, a run asked for gets a 409 saying so, and its schedule ends after one failed run.
"""

from __future__ import annotations

import logging

import asyncpg

from loadbay_contracts import Envelope
from loadbay_contracts.dataset_events import DatasetCreated, DatasetDeleted
from loadbay_ingestion import dataset_repository, repository

log = logging.getLogger(__name__)


async def on_dataset_created(
    conn: asyncpg.Connection, envelope: Envelope, event: DatasetCreated
) -> None:
    await dataset_repository.upsert_dataset(
        conn,
        dataset_id=event.dataset_id,
        domain=event.domain,
        name=event.name,
        dataset_type=event.dataset_type,
        file_type=event.file_type,
        owner_id=event.owner.user_id,
        owner_email=event.owner.email,
        authorized_users=sorted({u.user_id for u in event.authorized_users}),
    )


def deleted_reason(domain: str, name: str, when: str) -> str:
    return (
        f"dataset {domain}/{name} was deleted ({when}): this binding is disabled and ingests"
        " nothing more; unbind it, and bind the dataset again if it is created anew"
    )


async def on_dataset_deleted(
    conn: asyncpg.Connection, envelope: Envelope, event: DatasetDeleted
) -> None:
    await dataset_repository.delete_dataset(conn, event.dataset_id, event.domain, event.name)
    reason = deleted_reason(event.domain, event.name, envelope.time.isoformat())
    disabled = await repository.disable_bindings(conn, event.dataset_id, event.domain,
                                                 event.name, reason)  # fmt: skip
    if disabled:
        log.info("dataset %s/%s deleted: disabled %d binding(s)", event.domain, event.name,
                 len(disabled))  # fmt: skip
