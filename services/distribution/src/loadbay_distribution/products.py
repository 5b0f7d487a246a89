"""Data products, segments, client workspaces and datasets: requests and their checks."""

from __future__ import annotations

import re
import uuid
from typing import Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from loadbay_contracts import WorkspaceColumn
from loadbay_distribution import repository
from loadbay_distribution.errors import Conflict, DistributionError, NotFound
from loadbay_platform.auth import Principal

CLIENT_ID = r"^[0-9A-Za-z_]{1,255}$"
NAME = r"^[a-z][a-z0-9_]{0,40}$"


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    bucket: str = Field(min_length=3)
    prefix: str = ""
    segments: list[str] = Field(default_factory=lambda: ["default"])


class WorkspaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(pattern=CLIENT_ID)
    segment: str = "default"


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    segment: str = "default"
    columns: list[WorkspaceColumn] = Field(min_length=1)
    grain: list[str] = Field(default_factory=list, description="fact table grain (a__ columns)")
    mode: Literal["add"] = "add"


async def product_for(conn: asyncpg.Connection, name: str, principal: Principal) -> asyncpg.Record:
    """The data product, if the principal owns it; others are told it does not exist."""
    product = await repository.product_by_name(conn, name)
    if product is None or product["owner_id"] != principal.user_id:
        raise NotFound(f"no data product {name!r} (or it is not yours)")
    return product


async def create_product(
    conn: asyncpg.Connection, request: ProductCreate, owner: Principal
) -> asyncpg.Record:
    product_id = str(uuid.uuid4())
    created = await repository.insert_product(
        conn, id=product_id, name=request.name, bucket=request.bucket,
        prefix=request.prefix, owner_id=owner.user_id, owner_email=owner.email,
    )  # fmt: skip
    if not created:
        raise Conflict(f"data product {request.name!r} exists already")
    product = await product_for(conn, request.name, owner)
    for segment in request.segments:
        await add_segment(conn, product, segment)
    return product


async def add_segment(conn: asyncpg.Connection, product: asyncpg.Record, segment: str) -> None:
    if not re.match(NAME, segment):
        raise DistributionError(f"segment name {segment!r} must match {NAME}")
    await repository.insert_segment(conn, product["id"], segment)


def schema_name(product: str, client_id: str) -> str:
    """Each client workspace is a PostgreSQL schema: ws_<product>_<client id>."""
    base = f"ws_{product}_{client_id.lower()}"
    if len(base) <= 63 and client_id == client_id.lower():
        return base
    # Long or mixed-case ids would collide once lowercased or cut: add a short hash.
    return f"{base[:50]}_{uuid.uuid5(uuid.NAMESPACE_OID, client_id).hex[:8]}"


async def add_workspace(
    conn: asyncpg.Connection, product: asyncpg.Record, request: WorkspaceCreate
) -> None:
    if request.segment not in await repository.list_segments(conn, product["id"]):
        raise NotFound(f"no segment {request.segment!r} in {product['name']}")
    created = await repository.insert_workspace(
        conn, str(uuid.uuid4()), product["id"], request.segment, request.client_id,
        schema_name(product["name"], request.client_id),
    )  # fmt: skip
    if not created:
        raise Conflict(f"client id {request.client_id!r} is taken in {product['name']}")


async def add_dataset(
    conn: asyncpg.Connection, product: asyncpg.Record, request: DatasetCreate
) -> None:
    if request.segment not in await repository.list_segments(conn, product["id"]):
        raise NotFound(f"no segment {request.segment!r} in {product['name']}")
    names = [c.name for c in request.columns]
    if len(set(names)) != len(names):
        raise DistributionError(f"duplicate columns in {names}")
    connection_points = [n for n in names if n.startswith("cp__")]
    if len(connection_points) > 1:
        raise DistributionError(f"a dataset has at most one connection point: {connection_points}")
    bad_grain = [g for g in request.grain if g not in names or not g.startswith("a__")]
    if bad_grain:
        raise DistributionError(f"the grain must name a__ columns of the dataset: {bad_grain}")
    created = await repository.insert_dataset(
        conn, product["id"], request.name, request.segment,
        [c.model_dump() for c in request.columns], request.grain,
    )  # fmt: skip
    if not created:
        raise Conflict(f"dataset {request.name!r} exists in {product['name']}")
