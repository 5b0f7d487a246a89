"""Reload datasets: their declared shape and who may use them."""

from __future__ import annotations

import json
import uuid
from typing import Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from loadbay_contracts import ColumnSpec, CsvOptionsSpec, DatasetSpec, Recipient
from loadbay_contracts.dataset_events import DatasetCreated, DatasetDeleted
from loadbay_contracts.datasets import IDENTIFIER
from loadbay_platform import outbox
from loadbay_platform.auth import Principal
from loadbay_platform.errors import ApiError
from loadbay_platform.warehouse import domain_problem
from loadbay_reload import repository
from loadbay_reload.errors import (
    DatasetExists,
    DatasetNotFound,
    DomainReserved,
    NotAuthorized,
)

# PostgreSQL's limit on the columns of a table.
MAX_COLUMNS = 1600


# Text stored as given: no NUL (PostgreSQL cannot hold one), bounded.
NO_NUL = r"^[^\x00]*$"


class AuthorizedUser(BaseModel):
    model_config = ConfigDict(frozen=True)
    user_id: str = Field(min_length=1, max_length=256, pattern=NO_NUL)
    email: str = Field(max_length=320, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")


class DatasetCreate(BaseModel):
    """A request to create a dataset (Reload, or Append)."""

    model_config = ConfigDict(extra="forbid")

    domain: str = Field(pattern=IDENTIFIER.pattern, description="Warehouse schema of the dataset")
    name: str = Field(pattern=IDENTIFIER.pattern, min_length=3)
    dataset_type: Literal["reload", "append"] = Field(
        default="reload",
        description="reload: each run replaces the rows; append: each file's rows are added once",
    )
    file_type: Literal["csv"] = "csv"
    description: str = Field(default="", max_length=10_000, pattern=NO_NUL)
    columns: list[ColumnSpec] = Field(min_length=1, max_length=MAX_COLUMNS)
    csv: CsvOptionsSpec = CsvOptionsSpec()
    authorized_users: list[AuthorizedUser] = Field(default=[], max_length=1000)

    @field_validator("csv")
    @classmethod
    def _csv_characters(cls, csv: CsvOptionsSpec) -> CsvOptionsSpec:
        # What the loader's COPY accepts, checked now rather than failing every load later.
        chars = {"delimiter": csv.delimiter, "quote": csv.quote, "escape": csv.escape}
        for what, char in chars.items():
            if char is not None and not (char == "\t" or (char.isascii() and char.isprintable())):
                raise ValueError(f"the CSV {what} must be a printable ASCII character or a tab")
        if csv.delimiter == csv.quote:
            raise ValueError("the CSV delimiter and quote must differ")
        return csv


class Dataset(BaseModel):
    id: str
    domain: str
    name: str
    dataset_type: str
    file_type: str
    description: str
    columns: list[ColumnSpec]
    csv: CsvOptionsSpec
    owner_id: str
    owner_email: str
    authorized_users: list[AuthorizedUser]
    warehouse_table: str

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Dataset:
        users = r["authorized_users"]
        return cls(
            id=r["id"],
            domain=r["domain"],
            name=r["name"],
            dataset_type=r["dataset_type"],
            file_type=r["file_type"],
            description=r["description"],
            columns=json.loads(r["columns"]),
            csv=json.loads(r["csv_options"]),
            owner_id=r["owner_id"],
            owner_email=r["owner_email"],
            authorized_users=json.loads(users) if isinstance(users, str) else users,
            warehouse_table=f"{r['domain']}.{r['name']}",
        )

    def spec(self) -> DatasetSpec:
        return DatasetSpec(
            dataset_id=self.id,
            domain=self.domain,
            name=self.name,
            file_type="csv",
            columns=tuple(self.columns),
            csv=self.csv,
        )

    def may_use(self, user_id: str) -> bool:
        return user_id == self.owner_id or any(u.user_id == user_id for u in self.authorized_users)

    def email_of(self, user_id: str) -> str:
        if user_id == self.owner_id:
            return self.owner_email
        for u in self.authorized_users:
            if u.user_id == user_id:
                return u.email
        return self.owner_email

    def recipients(self, *user_ids: str) -> tuple[Recipient, ...]:
        """The users to tell about a run, and the owner, each once."""
        seen: dict[str, Recipient] = {}
        for uid in (*user_ids, self.owner_id):
            email = self.email_of(uid)
            seen.setdefault(email, Recipient(user_id=uid, email=email))
        return tuple(seen.values())


def check_domain(domain: str) -> None:
    """A domain is a warehouse schema: it may not be one that the platform, a client
    workspace or PostgreSQL uses (see loadbay_platform.warehouse)."""
    problem = domain_problem(domain)
    if problem is not None:
        raise DomainReserved(problem)


async def create_dataset(
    conn: asyncpg.Connection, request: DatasetCreate, owner: Principal
) -> Dataset:
    check_domain(request.domain)
    names = [c.name for c in request.columns]
    if len(set(names)) != len(names):
        raise ApiError(f"duplicate column names in {names}")
    dataset_id = str(uuid.uuid4())
    created = await repository.insert_dataset(
        conn,
        dataset_id=dataset_id,
        domain=request.domain,
        name=request.name,
        file_type=request.file_type,
        columns=[c.model_dump() for c in request.columns],
        csv_options=request.csv.model_dump(),
        description=request.description,
        owner_id=owner.user_id,
        owner_email=owner.email,
        authorized_users=[(u.user_id, u.email) for u in request.authorized_users],
        dataset_type=request.dataset_type,
    )
    if not created:
        raise DatasetExists(request.domain, request.name)
    dataset = await get_dataset(conn, request.domain, request.name, owner)
    # Other services (ingestion's bindings) learn who owns and may use it from this event.
    await outbox.enqueue(
        conn,
        DatasetCreated(
            dataset_id=dataset.id, domain=dataset.domain, name=dataset.name,
            dataset_type=request.dataset_type, file_type=dataset.file_type,
            owner=Recipient(user_id=dataset.owner_id, email=dataset.owner_email),
            authorized_users=tuple(
                Recipient(user_id=u.user_id, email=u.email) for u in dataset.authorized_users
            ),
        ),
        service="reload", subject=f"{dataset.domain}/{dataset.name}",
    )  # fmt: skip
    return dataset


async def find_dataset(conn: asyncpg.Connection, domain: str, name: str) -> Dataset | None:
    record = await repository.get_dataset_by_name(conn, domain, name)
    return Dataset.from_record(record) if record else None


async def get_dataset(
    conn: asyncpg.Connection, domain: str, name: str, principal: Principal
) -> Dataset:
    """The dataset, if the principal may use it. Others are told it does not exist (404), so
    dataset names do not leak."""
    dataset = await find_dataset(conn, domain, name)
    if dataset is None or not dataset.may_use(principal.user_id):
        raise DatasetNotFound(domain, name)
    return dataset


async def list_datasets(conn: asyncpg.Connection, principal: Principal) -> list[Dataset]:
    return [
        Dataset.from_record(r)
        for r in await repository.list_datasets_for_user(conn, principal.user_id)
    ]


async def delete_dataset(conn: asyncpg.Connection, dataset: Dataset, principal: Principal) -> None:
    if principal.user_id != dataset.owner_id:
        raise NotAuthorized(
            f"only the owner ({dataset.owner_id}) may delete {dataset.domain}/{dataset.name}"
        )
    await repository.delete_dataset(conn, dataset.id)
    await outbox.enqueue(
        conn,
        DatasetDeleted(dataset_id=dataset.id, domain=dataset.domain, name=dataset.name),
        service="reload", subject=f"{dataset.domain}/{dataset.name}",
    )  # fmt: skip
