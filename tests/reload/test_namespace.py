"""One warehouse namespace: a reload domain can never be a workspace's, a service's or
PostgreSQL's schema (409 saying what the name is reserved for), and the loader never replaces
a table it did not create for that dataset."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from loadbay_contracts import DatasetDeleted, Envelope
from tests.conftest import Platform, User, eventually
from tests.reload.flows import (
    batch_prefix,
    create_dataset,
    files,
    finished_execution,
    land,
    publish_event,
)

CSV = b"id,name,amount,day\n1,new,1,2024-01-01\n"


@pytest.mark.parametrize(
    ("domain", "reserved_for"),
    [
        ("ws_shop_acme", "distribution client workspaces"),
        ("loadbay_loader", "the graph store is in loadbay_loader"),
        ("loadbay_distribution", "the loadbay services' own schemas"),
        ("pg_catalog", "PostgreSQL's system schemas"),
        ("public", "PostgreSQL's default schema"),
        ("information_schema", "PostgreSQL's catalog"),
    ],
)
async def test_a_reserved_domain_answers_409_saying_what_it_is_reserved_for(
    reload_api: httpx.AsyncClient, alice: User, domain: str, reserved_for: str
) -> None:
    response = await reload_api.post(
        "/datasets",
        json={"domain": domain, "name": "orders", "columns": [{"name": "a", "type": "text"}]},
        headers=alice.headers,
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "DomainReserved"
    assert reserved_for in response.json()["message"]
    assert "choose another name" in response.json()["message"]


async def _reload(
    platform: Platform, api: httpx.AsyncClient, user: User, s3: Any, domain: str, name: str,
    count: int = 1, upload_date: int = 1700000000,
) -> dict[str, Any]:  # fmt: skip
    land(s3, platform.settings.s3.lz_bucket, batch_prefix(domain, name, user, upload_date),
         {"f.csv": CSV})  # fmt: skip
    return await finished_execution(api, user, domain, name, count)


async def test_a_table_the_loader_did_not_create_is_never_replaced(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
    warehouse: asyncpg.Connection,
) -> None:
    domain, name = names
    # Someone's table, made by hand, where the dataset's table would go.
    await warehouse.execute(
        f'CREATE SCHEMA "{domain}"; CREATE TABLE "{domain}"."{name}" (precious text);'
        f' INSERT INTO "{domain}"."{name}" VALUES (\'keep me\')'
    )
    await create_dataset(reload_api, alice, domain, name)
    execution = await _reload(platform, reload_api, alice, s3, domain, name)

    assert execution["status"] == "failed"
    assert execution["reason"].startswith(
        f"warehouse table {domain}.{name} exists but loadbay did not create it for this dataset"
    ), execution["reason"]
    assert execution["reason"].endswith(
        "(drop or rename that table, or choose another domain or name)"
    )
    assert await warehouse.fetchval(f'SELECT precious FROM "{domain}"."{name}"') == "keep me"
    pending = await files(reload_api, alice, domain, name, "pending")
    assert pending[0]["error"] == execution["reason"]


async def test_a_table_registered_to_another_owner_is_never_replaced(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
    warehouse: asyncpg.Connection,
) -> None:
    domain, name = names
    await warehouse.execute(
        f'CREATE SCHEMA "{domain}"; CREATE TABLE "{domain}"."{name}" (id int);'
        f' INSERT INTO "{domain}"."{name}" VALUES (42);'
        " INSERT INTO loadbay_loader.warehouse_tables (schema_name, table_name, owner_kind,"
        f" owner_id) VALUES ('{domain}', '{name}', 'workspace', '{domain}')"
    )
    await create_dataset(reload_api, alice, domain, name)
    execution = await _reload(platform, reload_api, alice, s3, domain, name)

    assert execution["status"] == "failed"
    assert execution["reason"].startswith(
        f"warehouse table {domain}.{name} belongs to a client workspace: loadbay never drops"
        " or replaces a table it did not create for this dataset; nothing was changed"
    ), execution["reason"]
    assert await warehouse.fetchval(f'SELECT id FROM "{domain}"."{name}"') == 42


async def test_a_dataset_owns_its_table_and_a_deleted_dataset_s_table_is_adopted(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    bob: User,
    names: tuple[str, str],
    s3: Any,
    warehouse: asyncpg.Connection,
) -> None:
    domain, name = names
    first = await create_dataset(reload_api, alice, domain, name)
    assert (await _reload(platform, reload_api, alice, s3, domain, name))["status"] == "succeeded"
    assert (await _reload(platform, reload_api, alice, s3, domain, name, 2, 1700000001))[
        "status"
    ] == "succeeded"
    owner = await warehouse.fetchrow(
        "SELECT owner_kind, owner_id FROM loadbay_loader.warehouse_tables"
        " WHERE schema_name = $1 AND table_name = $2",
        domain,
        name,
    )
    assert tuple(owner) == ("dataset", first["id"])

    # Deleted: its table stays, and once the loader hears of it, a new dataset of the same
    # name (here another user's) may load into it.
    deleted = await reload_api.delete(f"/datasets/{domain}/{name}", headers=alice.headers)
    assert deleted.status_code == 204
    event = DatasetDeleted(dataset_id=first["id"], domain=domain, name=name)
    await publish_event(
        platform.settings.kafka.bootstrap_servers, Envelope.wrap(event, source="test"), event
    )

    async def released() -> bool:
        return (
            await warehouse.fetchval(
                "SELECT owner_id IS NULL FROM loadbay_loader.warehouse_tables"
                " WHERE schema_name = $1 AND table_name = $2",
                domain,
                name,
            )
            is True
        )

    await eventually(released)
    second = await create_dataset(reload_api, bob, domain, name)
    execution = await _reload(platform, reload_api, bob, s3, domain, name, 1, 1700000002)
    assert execution["status"] == "succeeded", execution
    assert (
        await warehouse.fetchval(
            "SELECT owner_id FROM loadbay_loader.warehouse_tables"
            " WHERE schema_name = $1 AND table_name = $2",
            domain,
            name,
        )
        == second["id"]
    )


async def test_a_workspace_table_cannot_be_taken_over_through_a_reload_domain(
    reload_api: httpx.AsyncClient, alice: User, warehouse: asyncpg.Connection
) -> None:
    # The attack of issue 8: a domain spelling a client workspace's schema.
    schema = f"ws_shop_{uuid.uuid4().hex[:8]}"
    response = await reload_api.post(
        "/datasets",
        json={"domain": schema, "name": "products", "columns": [{"name": "a", "type": "text"}]},
        headers=alice.headers,
    )
    assert response.status_code == 409
    assert "distribution client workspaces" in response.json()["message"]


async def test_a_dataset_made_in_a_ws_domain_before_it_was_reserved_never_loads(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    s3: Any,
    warehouse: asyncpg.Connection,
) -> None:
    domain, name = f"ws_legacy_{uuid.uuid4().hex[:8]}", "products"
    # As the API allowed before ws_ was reserved.
    await warehouse.execute(
        "INSERT INTO loadbay_reload.datasets (id, domain, name, file_type, columns, csv_options,"
        " owner_id, owner_email) VALUES ($1, $2, $3, 'csv', $4::jsonb, '{}'::jsonb, $5, $6)",
        str(uuid.uuid4()),
        domain,
        name,
        '[{"name": "id", "type": "integer"}, {"name": "name", "type": "text"},'
        ' {"name": "amount", "type": "numeric"}, {"name": "day", "type": "date"}]',
        alice.user_id,
        alice.email,
    )
    execution = await _reload(platform, reload_api, alice, s3, domain, name)
    assert execution["status"] == "failed"
    assert execution["reason"].startswith(
        f"nothing was loaded: domain {domain!r} is reserved for distribution client workspaces"
    )
    assert await warehouse.fetchval("SELECT to_regclass($1)", f"{domain}.{name}") is None
