"""Loads into client workspaces (workspace.load.requested) against a real PostgreSQL (the
stack's) and, for the handler path, a real S3 (moto_server)."""

from __future__ import annotations

import gzip
import io
import json
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from loadbay_contracts import (
    Envelope,
    WorkspaceColumn,
    WorkspaceLoadCompleted,
    WorkspaceLoadRequested,
    WorkspaceLoadResult,
    WorkspaceTarget,
)
from loadbay_loader.handlers import Handlers
from loadbay_loader.workspace import loads as workspace_loads
from loadbay_platform.s3 import s3_client
from loadbay_platform.service import Resources
from loadbay_platform.settings import PlatformSettings, S3Settings

SCHEMA = "loadbay_loader"

# --------------------------------------------------------------------------- fixtures


# --------------------------------------------------------------------------- helpers

INVOICES = (
    WorkspaceColumn(name="cp__invoice_id", type="integer"),
    WorkspaceColumn(name="r__customer", type="integer"),
    WorkspaceColumn(name="f__totalprice", type="numeric"),
)
TICKETS = (
    WorkspaceColumn(name="a__ticket_id", type="integer"),
    WorkspaceColumn(name="a__organization"),
    WorkspaceColumn(name="f__timespentsec", type="integer"),
)
BRANCHES = (
    WorkspaceColumn(name="a__branch"),
    WorkspaceColumn(name="a__organization"),
    WorkspaceColumn(name="a__address"),
    WorkspaceColumn(name="f__mrr", type="numeric"),
)


def target(client: str, mode: str = "inc", schema: str | None = None) -> WorkspaceTarget:
    return WorkspaceTarget(
        workspace_id=f"ws-{client}",
        client_id=client,
        schema_name=schema or f"ws_{uuid.uuid4().hex[:12]}",
        mode=mode,
    )


def request(
    keys: tuple[str, ...],
    targets: tuple[WorkspaceTarget, ...],
    columns: tuple[WorkspaceColumn, ...] = INVOICES,
    grain: tuple[str, ...] = (),
    dataset: str = "invoices",
) -> WorkspaceLoadRequested:
    return WorkspaceLoadRequested(
        request_id=str(uuid.uuid4()),
        run_id="run-1",
        data_product_id="dp-1",
        dataset=dataset,
        columns=columns,
        grain=grain,
        bucket="ws-loads-source",
        keys=keys,
        timestamp="20200821120000",
        targets=targets,
    )


async def load(
    pool: asyncpg.Pool, event: WorkspaceLoadRequested, files: dict[str, bytes]
) -> WorkspaceLoadCompleted:
    """Run the load as the consumer does (one transaction), and return the event it emitted
    through the outbox (checked against the function's own return value)."""

    async def open_object(key: str) -> AsyncIterator[bytes]:
        data = files[key]
        for i in range(0, len(data), 7):  # small chunks: headers and rows straddle them
            yield data[i : i + 7]

    async with pool.acquire() as conn, conn.transaction():
        returned = await workspace_loads.load_into_workspaces(conn, open_object, event)
    return await emitted(pool, event, returned)


async def emitted(
    pool: asyncpg.Pool,
    event: WorkspaceLoadRequested,
    returned: WorkspaceLoadCompleted | None = None,
) -> WorkspaceLoadCompleted:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT topic, key, envelope::text AS envelope FROM outbox"
            " WHERE envelope->'data'->>'request_id' = $1",
            event.request_id,
        )
    assert len(rows) == 1
    assert rows[0]["topic"] == WorkspaceLoadCompleted.topic()
    assert rows[0]["key"] == event.data_product_id
    envelope = Envelope.model_validate_json(rows[0]["envelope"])
    assert envelope.type == WorkspaceLoadCompleted.TYPE
    completed = WorkspaceLoadCompleted.model_validate(envelope.data)
    if returned is not None:
        assert completed == returned
    return completed


async def rows_of(pool: asyncpg.Pool, schema: str, table: str) -> list[tuple[Any, ...]]:
    async with pool.acquire() as conn:
        records = await conn.fetch(f'SELECT * FROM "{schema}"."{table}"')
    return sorted((tuple(r.values()) for r in records), key=repr)


def ok(t: WorkspaceTarget, upserted: int = 0, deleted: int = 0) -> WorkspaceLoadResult:
    return WorkspaceLoadResult(
        workspace_id=t.workspace_id,
        status="succeeded",
        rows_upserted=upserted,
        rows_deleted=deleted,
    )


def csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


# --------------------------------------------------------------------------- the seed's deletes


async def test_inc_deletes_by_connection_point(pool: asyncpg.Pool) -> None:
    ws = target("c1", "full")
    first = csv(
        "cp__invoice_id,r__customer,f__totalprice,x__deleted",
        "100,3,324,FALSE",
        "101,78,109,FALSE",
    )
    done = await load(pool, request(("inv_1.csv",), (ws,)), {"inv_1.csv": first})
    assert done.results == (ok(ws, upserted=2),)

    inc = target("c1", "inc", ws.schema_name)
    update = csv("cp__invoice_id,r__customer,f__totalprice,x__deleted", "101,3,,TRUE")
    done = await load(pool, request(("inv_2.csv",), (inc,)), {"inv_2.csv": update})

    assert done.results == (ok(inc, deleted=1),)
    assert await rows_of(pool, ws.schema_name, "invoices") == [(100, 3, Decimal(324))]


async def test_inc_deletes_by_fact_table_grain(pool: asyncpg.Pool) -> None:
    grain = ("a__ticket_id", "a__organization")
    ws = target("c1", "full")
    header = "a__ticket_id,a__organization,f__timespentsec,x__deleted"
    first = csv(header, "12345,ABC company,458,FALSE", "12346,CDE company,11342,FALSE")
    await load(pool, request(("t_1.csv",), (ws,), TICKETS, grain, "tickets"), {"t_1.csv": first})

    inc = target("c1", "inc", ws.schema_name)
    # Same ticket id in another organization: not the same grain, so it stays.
    update = csv(header, "12345,ABC company,,TRUE", "12346,ABC company,,TRUE")
    done = await load(
        pool, request(("t_2.csv",), (inc,), TICKETS, grain, "tickets"), {"t_2.csv": update}
    )

    assert done.results == (ok(inc, deleted=1),)
    assert await rows_of(pool, ws.schema_name, "tickets") == [(12346, "CDE company", 11342)]


async def test_inc_deletes_by_all_attributes(pool: asyncpg.Pool) -> None:
    ws = target("c1", "full")
    header = "a__branch,a__organization,a__address,f__mrr,x__deleted"
    first = csv(
        header,
        "NYC,ABC company,5th avenue,20000,FALSE",
        "LA,CDE company,3rd street,100000,FALSE",
        "SF,ABC company,,500,FALSE",  # an empty attribute must still match
    )
    await load(pool, request(("b_1.csv",), (ws,), BRANCHES, dataset="br"), {"b_1.csv": first})

    inc = target("c1", "inc", ws.schema_name)
    update = csv(
        header,
        "NYC,ABC company,5th avenue,20000,TRUE",  # all attributes match: deleted
        "LA,CDE company,4th street,100000,TRUE",  # one attribute differs: nothing to delete
        "SF,ABC company,,,TRUE",  # facts are ignored, empty matches empty
    )
    done = await load(
        pool, request(("b_2.csv",), (inc,), BRANCHES, dataset="br"), {"b_2.csv": update}
    )

    assert done.results == (ok(inc, deleted=2),)
    assert await rows_of(pool, ws.schema_name, "br") == [
        ("LA", "CDE company", "3rd street", Decimal(100000))
    ]


async def test_inc_upsert_by_all_attributes_replaces_equal_rows(pool: asyncpg.Pool) -> None:
    ws = target("c1", "inc")
    header = "a__branch,a__organization,a__address,f__mrr"
    await load(
        pool,
        request(("b_1.csv",), (ws,), BRANCHES, dataset="br"),
        {"b_1.csv": csv(header, "NYC,ABC,5th,1", "LA,CDE,3rd,2")},
    )
    done = await load(
        pool,
        request(("b_2.csv",), (ws,), BRANCHES, dataset="br"),
        {"b_2.csv": csv(header, "NYC,ABC,5th,10", "NYC,ABC,5th,11", "SF,ABC,1st,3")},
    )
    assert done.results == (ok(ws, upserted=2),)  # NYC's last row wins
    assert await rows_of(pool, ws.schema_name, "br") == [
        ("LA", "CDE", "3rd", Decimal(2)),
        ("NYC", "ABC", "5th", Decimal(11)),
        ("SF", "ABC", "1st", Decimal(3)),
    ]


# --------------------------------------------------------------------------- modes


async def test_full_rewrites_the_dataset_without_deleted_rows(pool: asyncpg.Pool) -> None:
    ws = target("c1", "full")
    header = "cp__invoice_id,r__customer,f__totalprice,x__deleted"
    await load(pool, request(("a.csv",), (ws,)), {"a.csv": csv(header, "1,1,1,false", "2,2,2,")})
    done = await load(
        pool,
        request(("b.csv",), (ws,)),
        {"b.csv": csv(header, "3,3,3,false", "4,4,4,true", "5,5,5,")},
    )
    assert done.results == (ok(ws, upserted=2, deleted=2),)
    assert await rows_of(pool, ws.schema_name, "invoices") == [
        (3, 3, Decimal(3)),
        (5, 5, Decimal(5)),
    ]


async def test_inc_upserts_and_the_last_row_of_a_key_wins(pool: asyncpg.Pool) -> None:
    ws = target("c1", "inc")
    header = "cp__invoice_id,r__customer,f__totalprice,x__deleted"
    await load(pool, request(("a.csv",), (ws,)), {"a.csv": csv(header, "1,1,1,", "2,2,2,")})
    done = await load(
        pool,
        request(("b.csv",), (ws,)),
        {
            "b.csv": csv(
                header,
                "1,1,10,false",
                "1,1,11,false",  # last upsert of 1 wins
                "2,2,,true",
                "2,2,20,false",  # deleted, then upserted: upserted
                "3,3,30,false",
                "3,3,,true",  # upserted, then deleted: not there
            )
        },
    )
    assert done.results == (ok(ws, upserted=2),)
    assert await rows_of(pool, ws.schema_name, "invoices") == [
        (1, 1, Decimal(11)),
        (2, 2, Decimal(20)),
    ]


async def test_rows_go_to_their_client_and_a_workspace_without_rows_is_untouched(
    pool: asyncpg.Pool,
) -> None:
    acme, beta, idle = target("acme"), target("beta", "full"), target("idle", "full")
    header = "x__client_id,cp__invoice_id,r__customer,f__totalprice"
    await load(pool, request(("a.csv",), (idle,)), {"a.csv": csv(header, "idle,9,9,9")})

    data = csv(header, "acme,1,1,1", "beta,2,2,2", "acme,3,3,3", "ghost,4,4,4", "zed,5,5,5")
    done = await load(pool, request(("b.csv",), (acme, beta, idle)), {"b.csv": data})

    assert done.results == (ok(acme, upserted=2), ok(beta, upserted=1), ok(idle))
    assert done.unknown_client_ids == ("ghost", "zed")
    assert await rows_of(pool, acme.schema_name, "invoices") == [
        (1, 1, Decimal(1)),
        (3, 3, Decimal(3)),
    ]
    assert await rows_of(pool, beta.schema_name, "invoices") == [(2, 2, Decimal(2))]
    assert await rows_of(pool, idle.schema_name, "invoices") == [(9, 9, Decimal(9))]


async def test_more_workspaces_than_staging_partitions_each_get_their_own_rows(
    pool: asyncpg.Pool,
) -> None:
    """130 targets: more than the staging's 31 partitions, so a partition holds up to 5
    client ids (found through an index on the client id). Each workspace gets only its rows,
    the last of a key winning; then an incremental load upserts and deletes through the key's
    unique index, which the first incremental load builds on the table full loads wrote."""
    n = 130
    clients = [f"c{i}" for i in range(n)]
    full = tuple(target(c, "full") for c in clients)
    header = "x__client_id,cp__invoice_id,r__customer,f__totalprice,x__deleted"
    lines = [f"c{i},{k},{i},{k},false" for k in range(3) for i in range(n)]
    lines += [f"c{i},0,{i},100,false" for i in range(0, n, 2)]  # even clients restate 0
    lines += ["c5,1,5,,true"]  # c5's last row of 1 deletes it
    done = await load(pool, request(("a.csv",), full), {"a.csv": csv(header, *lines)})
    assert done.results == tuple(ok(t, upserted=2 if t.client_id == "c5" else 3) for t in full)
    for i, t in enumerate(full):
        keys = [0, 2] if i == 5 else [0, 1, 2]
        expected = [(k, i, Decimal(100 if k == 0 and i % 2 == 0 else k)) for k in keys]
        assert await rows_of(pool, t.schema_name, "invoices") == expected

    inc = tuple(target(c, "inc", t.schema_name) for c, t in zip(clients, full, strict=True))
    lines = [f"c{i},1,{i},7,false" for i in range(n)] + ["c3,2,3,,true"]
    done = await load(pool, request(("b.csv",), inc), {"b.csv": csv(header, *lines)})
    assert done.results == tuple(ok(t, upserted=1, deleted=int(t.client_id == "c3")) for t in inc)
    assert await rows_of(pool, inc[3].schema_name, "invoices") == [
        (0, 3, Decimal(0)),
        (1, 3, Decimal(7)),
    ]
    assert await rows_of(pool, inc[5].schema_name, "invoices") == [
        (0, 5, Decimal(0)),
        (1, 5, Decimal(7)),
        (2, 5, Decimal(2)),
    ]


async def test_one_workspace_failing_leaves_the_others_loaded(pool: asyncpg.Pool) -> None:
    good, bad = target("good"), target("bad")
    async with pool.acquire() as conn:
        await conn.execute(
            f'CREATE SCHEMA "{bad.schema_name}";'
            f' CREATE TABLE "{bad.schema_name}".invoices (cp__invoice_id integer,'
            " r__customer integer, f__totalprice text)"
        )
    header = "cp__invoice_id,r__customer,f__totalprice"
    done = await load(pool, request(("a.csv",), (good, bad)), {"a.csv": csv(header, "1,1,1")})

    assert done.results[0] == ok(good, upserted=1)
    assert done.results[1].status == "failed"
    assert done.results[1].reason == (
        f"{bad.schema_name}.invoices: column f__totalprice is text, the dataset declares numeric"
    )
    assert await rows_of(pool, good.schema_name, "invoices") == [(1, 1, Decimal(1))]
    assert await rows_of(pool, bad.schema_name, "invoices") == []


# --------------------------------------------------------------------------- bad files


async def assert_file_fails(
    pool: asyncpg.Pool, files: dict[str, bytes], reason: str, keys: tuple[str, ...] = ("f.csv",)
) -> None:
    ws = target("c1", "full")
    header = "cp__invoice_id,r__customer,f__totalprice"
    await load(pool, request(("seed.csv",), (ws,)), {"seed.csv": csv(header, "7,7,7")})
    other = target("c2", "inc")
    done = await load(pool, request(keys, (ws, other)), files)
    assert [r.status for r in done.results] == ["failed", "failed"]
    assert [r.reason for r in done.results] == [reason, reason]
    assert await rows_of(pool, ws.schema_name, "invoices") == [(7, 7, Decimal(7))]
    async with pool.acquire() as conn:
        assert not await conn.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1", other.schema_name
        )


async def test_a_missing_dataset_column_fails_every_workspace(pool: asyncpg.Pool) -> None:
    await assert_file_fails(
        pool,
        {"f.csv": csv("cp__invoice_id,f__totalprice", "1,1")},
        "f.csv line 1, column 'r__customer': the header has no column 'r__customer', which the"
        " dataset declares",
    )


async def test_an_unprefixed_column_fails_every_workspace(pool: asyncpg.Pool) -> None:
    await assert_file_fails(
        pool,
        {"f.csv": csv("cp__invoice_id,r__customer,f__totalprice,comment", "1,1,1,hi")},
        "f.csv line 1, column 'comment': column 'comment' has no documented prefix"
        " (cp__, a__, l__, f__, r__, d__) and is not one of x__client_id, x__deleted,"
        " x__timestamp",
    )


async def test_a_non_boolean_x_deleted_names_file_line_column_and_value(
    pool: asyncpg.Pool,
) -> None:
    await assert_file_fails(
        pool,
        {
            "f.csv": csv(
                "cp__invoice_id,r__customer,f__totalprice,x__deleted", "1,1,1,f", "2,2,2,maybe"
            )
        },
        "f.csv line 3, column 'x__deleted': invalid input syntax for type boolean: \"maybe\"",
    )


async def test_an_empty_connection_point_fails_the_file(pool: asyncpg.Pool) -> None:
    await assert_file_fails(
        pool,
        {"f.csv": csv("cp__invoice_id,r__customer,f__totalprice", "1,1,1", ",2,2")},
        "f.csv line 3, column 'cp__invoice_id': column \"cp__invoice_id\" requires a value but"
        " the field is empty",
    )


async def test_a_bad_value_in_a_later_part_fails_the_whole_load(pool: asyncpg.Pool) -> None:
    header = "cp__invoice_id,r__customer,f__totalprice"
    await assert_file_fails(
        pool,
        {"p1.csv": csv(header, "1,1,1"), "p2.csv": csv(header, "2,2,abc")},
        "p2.csv line 2, column 'f__totalprice': invalid input syntax for type numeric: \"abc\"",
        keys=("p1.csv", "p2.csv"),
    )


# --------------------------------------------------------------------------- formats


def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return out.getvalue()


async def test_gz_and_zip_parts_load_together(pool: asyncpg.Pool) -> None:
    ws = target("c1", "inc")
    header = "cp__invoice_id,r__customer,f__totalprice,x__timestamp,a__extra"
    files = {
        "inv_part1.csv.gz": gzip.compress(csv(header, "1,1,1,t,x", "2,2,2,t,y")),
        "inv_part2.zip": zipped("inv_part2.csv", csv(header, "2,2,20,t,z", "3,3,3,t,")),
    }
    done = await load(pool, request(tuple(files), (ws,)), files)
    assert done.results == (ok(ws, upserted=3),)
    assert await rows_of(pool, ws.schema_name, "invoices") == [
        (1, 1, Decimal(1)),
        (2, 2, Decimal(20)),
        (3, 3, Decimal(3)),
    ]


async def test_a_bad_row_in_a_zip_is_placed(pool: asyncpg.Pool) -> None:
    header = "cp__invoice_id,r__customer,f__totalprice"
    await assert_file_fails(
        pool,
        {"z.zip": zipped("z.csv", csv(header, "1,1,1", '2,2,"x\ny"'))},
        "z.zip line 3, column 'f__totalprice': invalid input syntax for type numeric: \"x\ny\"",
        keys=("z.zip",),
    )
    await assert_file_fails(
        pool,
        {"z.zip": zipped("a.txt", b"")},
        "z.zip: a .zip must hold exactly one .csv file; it holds a.txt",
        keys=("z.zip",),
    )


async def test_parquet(pool: asyncpg.Pool) -> None:
    import pyarrow as pa  # the loader's parquet extra, which `make install` installs
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "x__client_id": ["c1", "c1", "c2"],
            "cp__invoice_id": pa.array([1, 2, 3], pa.int32()),
            "r__customer": pa.array([5, None, 7], pa.int64()),
            "f__totalprice": [1.5, 2.5, 3.5],
            "x__deleted": [False, None, False],
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=2)
    ws = target("c1", "full")
    done = await load(pool, request(("i.parquet",), (ws,)), {"i.parquet": out.getvalue()})
    assert done.results == (ok(ws, upserted=2),)
    assert done.unknown_client_ids == ("c2",)
    assert await rows_of(pool, ws.schema_name, "invoices") == [
        (1, 5, Decimal("1.5")),
        (2, None, Decimal("2.5")),
    ]


async def test_parquet_without_the_extra_fails_the_file_naming_the_extra(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if pyarrow were not installed: `import pyarrow.parquet` raises ImportError.
    for module in ("pyarrow", "pyarrow.csv", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, module, None)
    await assert_file_fails(
        pool,
        {"i.parquet": b"PAR1 not read: the reader is missing PAR1"},
        "i.parquet: Parquet files need the loader's parquet extra, which is not installed"
        " (pip install 'loadbay-loader[parquet]')",
        keys=("i.parquet",),
    )


# --------------------------------------------------------------------------- the handler and S3


async def test_handler_reads_s3_and_a_missing_object_fails_every_workspace(
    pool: asyncpg.Pool, moto_endpoint: str
) -> None:
    settings = S3Settings(
        endpoint_url=moto_endpoint,
        access_key_id="x",
        secret_access_key="x",
    )
    header = "cp__invoice_id,r__customer,f__totalprice"
    async with s3_client(settings) as s3:
        await s3.create_bucket(Bucket="ws-loads-source")
        await s3.put_object(Bucket="ws-loads-source", Key="inv.csv", Body=csv(header, "1,1,1"))
        handlers = Handlers(
            Resources(
                service="loader",
                settings=PlatformSettings(),
                pool=pool,
                broker=None,  # type: ignore[arg-type]  # nothing is published here
                s3=s3,
            )
        )
        a, b = target("c1"), target("c2", "full")
        present = request(("inv.csv",), (a, b))
        gone = request(("inv.csv", "inv_gone.csv"), (a, b))
        for event in (present, gone):
            envelope = Envelope.wrap(event, source="loadbay/distribution")
            async with pool.acquire() as conn, conn.transaction():
                await handlers.on_workspace_load_requested(conn, envelope, event)

    done = await emitted(pool, present)
    assert done.results == (ok(a, upserted=1), ok(b, upserted=1))
    failed = await emitted(pool, gone)
    reason = (
        "s3://ws-loads-source/inv_gone.csv: cannot read the source file (NoSuchKey); it may"
        " have been deleted after the distribution listed it"
    )
    assert [(r.status, r.reason) for r in failed.results] == [("failed", reason)] * 2
    assert await rows_of(pool, a.schema_name, "invoices") == [(1, 1, Decimal(1))]
    async with pool.acquire() as conn:
        ledger = await conn.fetchrow(
            "SELECT status, error FROM loads WHERE id = $1", gone.request_id
        )
    assert ledger["status"] == "failed"
    assert json.loads(ledger["error"])["message"] == reason


async def test_a_platform_schema_is_never_written(pool: asyncpg.Pool) -> None:
    mine = target("c1", "full", schema=SCHEMA)
    event = request(("f.csv",), (mine,), dataset="outbox")
    done = await load(pool, event, {"f.csv": csv("cp__invoice_id,r__customer,f__totalprice")})
    assert done.results[0].status == "failed"
    assert done.results[0].reason == f"{SCHEMA}: schema name is reserved for the platform"


async def test_without_a_key_full_keeps_every_row_and_inc_matches_attributes(
    pool: asyncpg.Pool,
) -> None:
    full, inc = target("f", "full"), target("i", "inc")
    header = "x__client_id,a__branch,a__organization,a__address,f__mrr,x__deleted"
    await load(
        pool,
        request(("a.csv",), (inc,), BRANCHES, dataset="br"),
        {"a.csv": csv(header, "i,NYC,ABC,5th,1,", "i,LA,CDE,3rd,2,")},
    )
    data = csv(
        header,
        "f,NYC,ABC,5th,1,",
        "f,NYC,ABC,5th,2,",  # no key: a full load keeps both
        "f,SF,ABC,1st,3,true",
        "i,NYC,ABC,5th,10,",
        "i,LA,CDE,3rd,,true",
    )
    done = await load(
        pool, request(("b.csv",), (full, inc), BRANCHES, dataset="br"), {"b.csv": data}
    )
    assert done.results == (ok(full, upserted=2), ok(inc, upserted=1, deleted=1))
    assert await rows_of(pool, full.schema_name, "br") == [
        ("NYC", "ABC", "5th", Decimal(1)),
        ("NYC", "ABC", "5th", Decimal(2)),
    ]
    assert await rows_of(pool, inc.schema_name, "br") == [("NYC", "ABC", "5th", Decimal(10))]


async def test_an_existing_table_gains_the_dataset_s_new_column(pool: asyncpg.Pool) -> None:
    ws = target("c1")
    async with pool.acquire() as conn:
        await conn.execute(
            f'CREATE SCHEMA "{ws.schema_name}";'
            f' CREATE TABLE "{ws.schema_name}".invoices (cp__invoice_id integer, r__customer'
            " integer); INSERT INTO " + f'"{ws.schema_name}"' + ".invoices VALUES (1, 1)"
        )
    header = "cp__invoice_id,r__customer,f__totalprice"
    done = await load(pool, request(("a.csv",), (ws,)), {"a.csv": csv(header, "2,2,2")})
    assert done.results == (ok(ws, upserted=1),)
    assert await rows_of(pool, ws.schema_name, "invoices") == [(1, 1, None), (2, 2, Decimal(2))]


async def test_a_table_registered_to_a_reload_dataset_is_never_rewritten(
    pool: asyncpg.Pool,
) -> None:
    ws = target("c1", "full")
    async with pool.acquire() as conn:
        await conn.execute(
            f'CREATE SCHEMA "{ws.schema_name}";'
            f' CREATE TABLE "{ws.schema_name}".invoices (cp__invoice_id integer, r__customer'
            f' integer, f__totalprice numeric); INSERT INTO "{ws.schema_name}".invoices'
            " VALUES (7, 7, 7)"
        )
        await conn.execute(
            "INSERT INTO warehouse_tables (schema_name, table_name, owner_kind, owner_id)"
            " VALUES ($1, 'invoices', 'dataset', 'some-dataset')",
            ws.schema_name,
        )
    header = "cp__invoice_id,r__customer,f__totalprice"
    done = await load(pool, request(("a.csv",), (ws,)), {"a.csv": csv(header, "1,1,1")})
    assert done.results[0].status == "failed"
    assert done.results[0].reason.startswith(
        f"{ws.schema_name}.invoices: warehouse table {ws.schema_name}.invoices belongs to a"
        " reload dataset: loadbay never drops or replaces a table it did not create for this"
        " client workspace; nothing was changed"
    )
    assert await rows_of(pool, ws.schema_name, "invoices") == [(7, 7, Decimal(7))]


async def test_a_table_outside_ws_schemas_is_not_adopted_by_a_workspace(
    pool: asyncpg.Pool,
) -> None:
    schema = f"sales_{uuid.uuid4().hex[:8]}"  # a reload domain, say
    ws = target("c1", "full", schema=schema)
    async with pool.acquire() as conn:
        await conn.execute(
            f'CREATE SCHEMA "{schema}"; CREATE TABLE "{schema}".invoices (cp__invoice_id'
            f" integer, r__customer integer, f__totalprice numeric);"
            f' INSERT INTO "{schema}".invoices VALUES (7, 7, 7)'
        )
    header = "cp__invoice_id,r__customer,f__totalprice"
    done = await load(pool, request(("a.csv",), (ws,)), {"a.csv": csv(header, "1,1,1")})
    assert done.results[0].status == "failed"
    assert (
        f"warehouse table {schema}.invoices exists but loadbay did not create it for this"
        " client workspace" in (done.results[0].reason or "")
    )
    assert await rows_of(pool, schema, "invoices") == [(7, 7, Decimal(7))]


# --------------------------------------------------------------------------- failure per workspace


async def test_a_bad_value_for_one_client_fails_only_that_workspace(pool: asyncpg.Pool) -> None:
    # The seed's Workspace 1 / Workspace 2, with the failure coming from Workspace 2's data.
    w1, w2, w3 = target("w1"), target("w2"), target("w3")
    header = "x__client_id,cp__invoice_id,r__customer,f__totalprice"
    data = csv(
        header,
        "w1,1,1,1.5",
        "w2,2,2,2.5",
        "w2,3,3,abc",
        "w1,4,4,4",
        "w3,5,5,5",
        "w3,6,,",
        "w2,7,7,xyz",
    )
    done = await load(pool, request(("d.csv",), (w1, w2, w3)), {"d.csv": data})

    assert done.results[0] == ok(w1, upserted=2)
    assert done.results[1].status == "failed"
    assert done.results[1].reason == (
        "d.csv line 4, column 'f__totalprice': invalid input syntax for type numeric: \"abc\""
    )
    assert done.results[2] == ok(w3, upserted=2)
    assert done.unknown_client_ids == ()
    assert await rows_of(pool, w1.schema_name, "invoices") == [
        (1, 1, Decimal("1.5")),
        (4, 4, Decimal(4)),
    ]
    assert await rows_of(pool, w3.schema_name, "invoices") == [
        (5, 5, Decimal(5)),
        (6, None, None),
    ]
    async with pool.acquire() as conn:
        assert not await conn.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1", w2.schema_name
        )


async def test_a_bad_value_in_a_second_part_names_that_part_and_line(pool: asyncpg.Pool) -> None:
    w1, w2 = target("w1"), target("w2")
    header = "x__client_id,cp__invoice_id,r__customer,f__totalprice,x__deleted"
    files = {
        "p1.csv": csv(header, "w1,1,1,1,false", "w2,2,2,2,false"),
        "p2.csv": csv(header, "w1,3,3,3,", "w2,4,4,4,maybe"),
    }
    done = await load(pool, request(("p1.csv", "p2.csv"), (w1, w2)), files)

    assert done.results[0] == ok(w1, upserted=2)
    assert done.results[1].reason == (
        "p2.csv line 3, column 'x__deleted': invalid input syntax for type boolean: \"maybe\""
    )


async def test_an_empty_connection_point_for_one_client_fails_only_that_workspace(
    pool: asyncpg.Pool,
) -> None:
    w1, w2 = target("w1"), target("w2")
    header = "x__client_id,cp__invoice_id,r__customer,f__totalprice"
    data = csv(header, "w1,1,1,1", "w2,,2,2")
    done = await load(pool, request(("e.csv",), (w1, w2)), {"e.csv": data})

    assert done.results[0] == ok(w1, upserted=1)
    assert done.results[1].reason == (
        "e.csv line 3, column 'cp__invoice_id': column \"cp__invoice_id\" requires a value but"
        " the field is empty"
    )


async def test_the_seed_s_null_literals_in_delete_tables_are_null(pool: asyncpg.Pool) -> None:
    # The seed's delete tables: "1013,NULL,TRUE" (by connection point) and
    # "12345,ABC company,NULL,TRUE" (by fact table grain).
    inv = target("c1")
    header = "cp__invoice_id,r__customer,f__totalprice,x__deleted"
    await load(
        pool,
        request(("i1.csv",), (inv,)),
        {"i1.csv": csv(header, "1013,7,9.5,false", "1014,NULL,NULL,false")},
    )
    done = await load(
        pool,
        request(("i2.csv",), (inv,)),
        {
            "i2.csv": csv(
                "cp__invoice_id,r__customer,f__totalprice,x__deleted", "1013,NULL,NULL,TRUE"
            )
        },
    )
    assert done.results == (ok(inv, deleted=1),)
    assert await rows_of(pool, inv.schema_name, "invoices") == [(1014, None, None)]

    tickets = target("c2")
    theader = "a__ticket_id,a__organization,f__timespentsec,x__deleted"
    grain = ("a__ticket_id", "a__organization")
    await load(
        pool,
        request(("t1.csv",), (tickets,), TICKETS, grain, "tickets"),
        {"t1.csv": csv(theader, "12345,ABC company,30,false", "12346,NULL,NULL,false")},
    )
    done = await load(
        pool,
        request(("t2.csv",), (tickets,), TICKETS, grain, "tickets"),
        {"t2.csv": csv(theader, "12345,ABC company,NULL,TRUE")},
    )
    assert done.results == (ok(tickets, deleted=1),)
    # In a text column NULL is the text: the attribute keeps it.
    assert await rows_of(pool, tickets.schema_name, "tickets") == [(12346, "NULL", None)]
