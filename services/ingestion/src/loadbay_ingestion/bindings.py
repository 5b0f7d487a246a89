"""Bindings of datasets to a connection's directory path and file type.

Ingestion does not own datasets (the reload service does): the user names the dataset and
its type. The binding's creator is the `<user_id>` of the landing folders, and the reload
service checks that this user is authorized on the dataset.
"""

from __future__ import annotations

import uuid
from typing import Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from loadbay_ingestion import repository
from loadbay_ingestion.errors import Conflict, NotFound
from loadbay_platform.auth import Principal


class BindingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=r"^[A-Za-z0-9_]+/[A-Za-z0-9_]+$", description="<domain>/<name>")
    dataset_type: Literal["reload", "append"]
    file_type: str = Field("csv", pattern=r"^[a-z0-9]{1,10}$")
    directory_path: str = Field("", max_length=1024)


class ScheduleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_type: Literal["DataIngestion"] = "DataIngestion"
    cron: str


async def create_binding(
    conn: asyncpg.Connection, connection: asyncpg.Record, body: BindingCreate,
    principal: Principal,
) -> asyncpg.Record:  # fmt: skip
    binding_id = str(uuid.uuid4())
    created = await repository.insert_binding(
        conn,
        id=binding_id,
        connection_id=connection["id"],
        dataset=body.dataset,
        dataset_type=body.dataset_type,
        file_type=body.file_type,
        directory_path=body.directory_path,
        user_id=principal.user_id,
        user_email=principal.email,
    )
    if not created:
        raise Conflict(f"dataset {body.dataset} is bound to a connection already")
    found = await repository.binding_by_id(conn, binding_id)
    assert found is not None
    return found


async def binding_for(
    conn: asyncpg.Connection, dataset: str, principal: Principal
) -> tuple[asyncpg.Record, asyncpg.Record]:
    """The binding and its connection, if the principal may use the connection."""
    binding = await repository.binding_by_dataset(conn, dataset)
    connection = (
        await repository.connection_by_id(conn, binding["connection_id"]) if binding else None
    )
    if binding is None or connection is None:
        raise NotFound(f"dataset {dataset} is not bound to a connection")
    users = await repository.connection_users(conn, connection["id"])
    if principal.user_id != connection["owner_id"] and principal.user_id not in users:
        raise NotFound(f"dataset {dataset} is not bound to a connection")
    return binding, connection
