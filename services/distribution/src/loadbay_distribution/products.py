"""Data products, segments, client workspaces and datasets: requests and their checks."""

from __future__ import annotations

import re
import uuid
from typing import Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from loadbay_contracts import WorkspaceColumn
from loadbay_distribution import repository
from loadbay_distribution.rows import Product
from loadbay_platform.auth import Principal
from loadbay_platform.errors import ApiError, Conflict, NotFound
from loadbay_platform.warehouse import workspace_schema

CLIENT_ID = r"^[0-9A-Za-z_]{1,255}$"
NAME = r"^[a-z][a-z0-9_]{0,40}$"
DATASET_NAME = r"^[a-z][a-z0-9_]{0,62}$"
# S3 bucket naming rules (3-63 lowercase letters, digits, dots and hyphens).
BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
NO_NUL = r"^[^\x00]*$"


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    bucket: str = Field(pattern=BUCKET, description="The source bucket (S3 naming rules)")
    prefix: str = Field(default="", max_length=1024, pattern=NO_NUL)
    segments: list[str] = Field(default_factory=lambda: ["default"], max_length=100)


class WorkspaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(pattern=CLIENT_ID)
    segment: str = Field(default="default", pattern=NAME)


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=DATASET_NAME)
    segment: str = Field(default="default", pattern=NAME)
    columns: list[WorkspaceColumn] = Field(min_length=1, max_length=1600)
    grain: list[str] = Field(
        default_factory=list, max_length=1600, description="fact table grain (a__ columns)"
    )
    mode: Literal["add"] = "add"


async def product_for(conn: asyncpg.Connection, name: str, principal: Principal) -> Product:
    """The data product, if the principal owns it; others are told it does not exist."""
    product = await repository.product_by_name(conn, name)
    if product is None or product.owner_id != principal.user_id:
        raise NotFound(f"no data product {name!r} (or it is not yours)")
    return product


async def create_product(
    conn: asyncpg.Connection, request: ProductCreate, owner: Principal
) -> Product:
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


async def add_segment(conn: asyncpg.Connection, product: Product, segment: str) -> None:
    if not re.fullmatch(NAME[1:-1], segment):
        raise ApiError(f"segment name {segment!r} must match {NAME}")
    await repository.insert_segment(conn, product.id, segment)


def schema_name(product: str, client_id: str) -> str:
    """Each client workspace is a PostgreSQL schema: ws_<product>_<client id> (see
    loadbay_platform.warehouse: the ws_ prefix is the workspaces' alone)."""
    return workspace_schema(product, client_id)


async def add_workspace(
    conn: asyncpg.Connection, product: Product, request: WorkspaceCreate
) -> str:
    """Add a client workspace; returns its schema. Conflict if the client id is taken in the
    product, or if its schema is another workspace's: ws_<product>_<client id> is ambiguous
    when names hold underscores (product a_b + client c, product a + client b_c)."""
    if request.segment not in await repository.list_segments(conn, product.id):
        raise NotFound(f"no segment {request.segment!r} in {product.name}")
    schema = schema_name(product.name, request.client_id)
    created = await repository.insert_workspace(
        conn, str(uuid.uuid4()), product.id, request.segment, request.client_id, schema,
    )  # fmt: skip
    if created:
        return schema
    if await repository.workspace_exists(conn, product.id, request.client_id):
        raise Conflict(f"client id {request.client_id!r} is taken in {product.name}")
    raise Conflict(
        f"the workspace schema {schema} (ws_<data product>_<client id>) is already another"
        " workspace's: names with underscores can spell the same schema (product a_b with"
        " client c, product a with client b_c); choose another client id"
    )


async def add_dataset(conn: asyncpg.Connection, product: Product, request: DatasetCreate) -> None:
    if request.segment not in await repository.list_segments(conn, product.id):
        raise NotFound(f"no segment {request.segment!r} in {product.name}")
    names = [c.name for c in request.columns]
    if len(set(names)) != len(names):
        raise ApiError(f"duplicate columns in {names}")
    connection_points = [n for n in names if n.startswith("cp__")]
    if len(connection_points) > 1:
        raise ApiError(f"a dataset has at most one connection point: {connection_points}")
    bad_grain = [g for g in request.grain if g not in names or not g.startswith("a__")]
    if bad_grain:
        raise ApiError(f"the grain must name a__ columns of the dataset: {bad_grain}")
    created = await repository.insert_dataset(
        conn, product.id, request.name, request.segment,
        [c.model_dump() for c in request.columns], request.grain,
    )  # fmt: skip
    if not created:
        raise Conflict(f"dataset {request.name!r} exists in {product.name}")
