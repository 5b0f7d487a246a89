"""Bindings of datasets to a connection's directory path and file type.

Ingestion does not own datasets (the reload service does): it knows them from the reload
service's `dataset.created` / `dataset.deleted` events (datasets.py). A binding is made only by
the dataset's owner or one of its authorized users; to anyone else the dataset does not exist
(the same 422 as an unknown one). The binding's creator is the `<user_id>` of the landing
folders. A deleted dataset's bindings are disabled with the reason, and their runs fail with it.
"""

from __future__ import annotations

import uuid
from typing import Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from loadbay_ingestion import dataset_repository, repository
from loadbay_ingestion.rows import Binding, Connection, Dataset
from loadbay_platform.auth import Principal
from loadbay_platform.errors import Conflict, NotFound, Unprocessable


class BindingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=r"^[A-Za-z0-9_]+/[A-Za-z0-9_]+$", description="<domain>/<name>")
    # Optional: the dataset's own type. Given, it must match (skip-LZ is for Append only).
    dataset_type: Literal["reload", "append"] | None = None
    file_type: str = Field("csv", pattern=r"^[a-z0-9]{1,10}$")
    directory_path: str = Field("", max_length=1024)


class ScheduleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_type: Literal["DataIngestion"] = "DataIngestion"
    cron: str


def may_use(dataset: Dataset, user_id: str) -> bool:
    return user_id == dataset.owner_id or user_id in dataset.authorized_users


async def usable_dataset(
    conn: asyncpg.Connection, body: BindingCreate, principal: Principal
) -> Dataset:
    """The dataset to bind, if the principal may use it and the binding suits it (422)."""
    domain, name = body.dataset.split("/")
    dataset = await dataset_repository.live_dataset(conn, domain, name)
    if dataset is None or not may_use(dataset, principal.user_id):
        # The same answer whether it does not exist or is someone else's: no existence leak.
        raise Unprocessable(
            f"no dataset {body.dataset} (create it first; if you just did, retry in a moment)"
        )
    kind = dataset.dataset_type
    if body.dataset_type is not None and body.dataset_type != kind:
        raise Unprocessable(
            f"dataset {body.dataset} is a Reload dataset: each run replaces its rows through"
            " the landing zone, so dataset_type 'append' (and skip-LZ, which version 1.8 uses"
            " for Append datasets only) does not apply; leave dataset_type out or use 'reload'"
            if kind == "reload" else
            f"dataset {body.dataset} is an Append dataset: bind it with dataset_type 'append'"
            " (or leave dataset_type out)"
        )  # fmt: skip
    if body.file_type != dataset.file_type:
        raise Unprocessable(
            f"dataset {body.dataset} takes {dataset.file_type} files: file_type"
            f" {body.file_type!r} would land files the reload service refuses"
        )
    return dataset


async def create_binding(
    conn: asyncpg.Connection, connection: Connection, body: BindingCreate,
    principal: Principal,
) -> Binding:  # fmt: skip
    dataset = await usable_dataset(conn, body, principal)
    binding_id = str(uuid.uuid4())
    created = await repository.insert_binding(
        conn,
        id=binding_id,
        connection_id=connection.id,
        dataset=body.dataset,
        dataset_type=dataset.dataset_type,
        file_type=body.file_type,
        directory_path=body.directory_path,
        user_id=principal.user_id,
        user_email=principal.email,
        dataset_id=dataset.dataset_id,
    )
    if not created:
        raise Conflict(
            f"dataset {body.dataset} is bound to a connection already; unbind it there first"
            " (the dataset's owner may always unbind it)"
        )
    found = await repository.binding_by_id(conn, binding_id)
    assert found is not None
    return found


async def binding_to_unbind(
    conn: asyncpg.Connection, dataset: str, principal: Principal
) -> Binding:
    """What DELETE /bindings/{dataset} removes: a binding on a connection the principal may
    use, or, for the dataset's owner, its enabled binding wherever it is (so that an authorized
    user's binding never blocks the owner)."""
    try:
        binding, _ = await binding_for(conn, dataset, principal)
        return binding
    except NotFound:
        domain, name = dataset.split("/", 1)
        found = await dataset_repository.live_dataset(conn, domain, name)
        enabled = await repository.enabled_binding(conn, dataset)
        if found is None or enabled is None or found.owner_id != principal.user_id:
            raise
        return enabled


async def binding_for(
    conn: asyncpg.Connection, dataset: str, principal: Principal
) -> tuple[Binding, Connection]:
    """The binding and its connection, if the principal may use the connection (an enabled
    binding first, else the newest disabled one)."""
    binding = await repository.visible_binding(conn, dataset, principal.user_id)
    connection = await repository.connection_by_id(conn, binding.connection_id) if binding else None
    if binding is None or connection is None:
        raise NotFound(f"dataset {dataset} is not bound to a connection")
    return binding, connection
