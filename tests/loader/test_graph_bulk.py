"""The set-wise graph load path keeps Neptune's semantics: a first load into an empty graph
(bulk mode: indexes dropped and built again) and incremental loads (indexes kept), against a
real PostgreSQL. See test_graph_csv.py for the format itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from loadbay_loader.graph import csv_feed, index_store
from loadbay_loader.graph.feeds import LoadOptions
from tests.conftest import eventually
from tests.loader.test_graph_csv import (
    GREMLIN,
    URI,
    Loaded,
    edge,
    graph_size,
    load,
    props,
    vertex,
)

GRAPH_TABLES = ("graph_vertices", "graph_vertex_labels", "graph_vertex_properties", "graph_edges")
STOP = LoadOptions(format="csv", fail_on_error=True)
UPDATE = LoadOptions(format="csv", fail_on_error=False, update_single_cardinality_properties=True)

VERTICES = (
    "~id,~label,name:String,age:Int(single)\n"
    "v1,person,Ann,30\n"
    "v2,person,Ben,40\n"
    "v3,person;admin,Cy,50\n"
    "v4,city,,\n"
)
EDGE_HEADER = "~id,~from,~to,~label,weight:Double,since:Int\n"
EDGES = (
    EDGE_HEADER + "e1,v1,v2,knows,0.5,2001\n"
    "e2,v2,v3,knows,0.25,\n"
    "e3,v3,v4,lives,,\n"
    "e1,v1,v2,knows,0.5,2001\n"  # the same edge again in the same file
)


@pytest.fixture(autouse=True, params=["indexed", "bulk"])
async def empty_graph(
    request: pytest.FixtureRequest, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Every test runs with batches that keep the indexes and in bulk mode (its threshold
    lowered so that small files take it when a batch is large against its table); a test that
    needs the real threshold sets it back."""
    bulk_min_rows = 0 if request.param == "bulk" else 10**12
    monkeypatch.setattr(index_store, "BULK_MIN_ROWS", bulk_min_rows)
    await pool.execute(f"TRUNCATE {', '.join(GRAPH_TABLES)}")
    mode: str = request.param
    return mode


def where(loaded: Loaded) -> list[tuple[str, int, str]]:
    return [(e.code, e.record_num, e.file_name) for e in loaded.errors]


async def first_load(pool: asyncpg.Pool) -> None:
    vertices = await load(pool, VERTICES, uri="s3://bucket/first/vertices.csv")
    assert vertices.errors == [] and vertices.counts == (11, 0, 0, 0, 0)
    edges = await load(pool, EDGES, uri="s3://bucket/first/edges.csv")
    # e1 twice: its second row is a duplicate record, as are its two values
    assert edges.errors == [] and edges.counts == (9, 3, 0, 0, 0)
    assert await graph_size(pool) == {"vertices": 4, "edges": 3}


async def test_first_load_then_incremental_load(pool: asyncpg.Pool) -> None:
    await first_load(pool)
    uri = "s3://bucket/second/edges.csv"
    loaded = await load(
        pool,
        EDGE_HEADER + "e4,v4,v1,knows,1.5,1999\n"  # new
        "e1,v1,v2,knows,0.5,2001\n"  # loaded before, the same: 3 duplicates
        "e2,v2,v3,knows,0.75,\n"  # loaded before, another weight: a violation
        "e3,v1,v4,lives,,\n"  # an id loaded before for another edge
        "e5,v1,v9,knows,,\n"  # no vertex v9
        "e6,v2,v1,knows,2.0,2020\n"  # new
        "e6,v2,v1,knows,2.0,2020\n"  # new, twice in the file: 3 duplicates
        "e2,v2,v3,knows,,2005\n",  # e2 again: a value it did not have is added
        uri=uri,
    )
    assert where(loaded) == [
        ("SINGLE_CARDINALITY_VIOLATION", 3, uri),
        ("ID_ASSIGNED_TO_MULTIPLE_EDGES", 4, uri),
        ("FROM_OR_TO_VERTEX_ARE_MISSING", 5, uri),
    ]
    # records: e4 3, e1 3, e2 2, e3 1, e5 1, e6 3 + 3, e2 2; duplicates: the edges e1, e2, e2
    # and the second e6, e1's two values and the second e6's two
    assert loaded.counts == (18, 8, 0, 0, 3)
    assert await graph_size(pool) == {"vertices": 4, "edges": 5}
    assert (await edge(pool, "e2") or {})["properties"] == {"weight": 0.25, "since": 2005}
    assert (await edge(pool, "e3") or {})["from"] == "v3"
    assert (await edge(pool, "e6") or {})["properties"] == {"weight": 2.0, "since": 2020}

    loaded = await load(
        pool,
        "~id,~label,name:String,age:Int(single)\n"
        "v1,person,Ann,31\n"  # label and name again, another age: a violation
        "v5,person,Eve,20\n"
        "v5,person,Eve,20\n",
        uri="s3://bucket/second/vertices.csv",
    )
    assert where(loaded) == [("SINGLE_CARDINALITY_VIOLATION", 1, "s3://bucket/second/vertices.csv")]
    assert loaded.counts == (9, 5, 0, 0, 1)
    assert await props(pool, "v1") == {"name": ["Ann"], "age": [30]}
    assert await props(pool, "v5") == {"name": ["Eve"], "age": [20]}


async def test_fail_on_error_stops_an_incremental_load_at_its_first_error(
    pool: asyncpg.Pool,
) -> None:
    await first_load(pool)
    loaded = await load(
        pool,
        EDGE_HEADER + "e4,v4,v1,knows,1.5,1999\n"
        "e1,v1,v2,knows,0.5,2001\n"
        "e2,v2,v3,knows,0.75,\n"
        "e6,v2,v1,knows,2.0,2020\n",
        STOP,
    )
    assert [(e.code, e.record_num) for e in loaded.errors] == [("SINGLE_CARDINALITY_VIOLATION", 3)]
    assert loaded.result.stopped_on_error
    assert loaded.counts == (7, 3, 0, 0, 1)  # e4 and e1, then the record it stopped at
    assert await edge(pool, "e4") is not None and await edge(pool, "e6") is None
    assert (await edge(pool, "e2") or {})["properties"] == {"weight": 0.25}


async def test_single_cardinality_values_are_replaced_with_update(pool: asyncpg.Pool) -> None:
    await first_load(pool)
    loaded = await load(
        pool, "~id,~label,name:String,age:Int(single)\nv1,person,Ann,31\nv1,person,Ann,32\n", UPDATE
    )
    assert loaded.errors == [] and loaded.counts == (6, 4, 0, 0, 0)
    assert await props(pool, "v1") == {"name": ["Ann"], "age": [32]}  # the last one wins
    loaded = await load(
        pool,
        EDGE_HEADER + "e2,v2,v3,knows,0.75,\ne1,v1,v2,knows,0.9,2001\ne1,v1,v2,knows,0.95,2001\n",
        UPDATE,
    )
    assert loaded.errors == [] and loaded.counts == (8, 5, 0, 0, 0)
    assert (await edge(pool, "e2") or {})["properties"] == {"weight": 0.75}
    assert (await edge(pool, "e1") or {})["properties"] == {"weight": 0.95, "since": 2001}


@pytest.mark.parametrize("fail_on_error", [False, True])
async def test_missing_endpoints_are_reported_per_edge(
    pool: asyncpg.Pool, fail_on_error: bool
) -> None:
    await load(pool, "~id\nv1\nv2\n")
    options = LoadOptions(format="csv", fail_on_error=fail_on_error)
    data = "~id,~from,~to\ne1,v1,v2\ne2,v1,x\ne3,y,v2\ne4,y,x\ne5,v2,v1\n"
    loaded = await load(pool, data, options)
    missing = "FROM_OR_TO_VERTEX_ARE_MISSING"
    if fail_on_error:
        assert [(e.code, e.record_num) for e in loaded.errors] == [(missing, 2)]
        assert '~to vertex "x" does not exist' in loaded.errors[0].message
        assert loaded.counts == (2, 0, 0, 0, 1)
        assert (await graph_size(pool))["edges"] == 1
    else:  # e4 misses both ends: two errors for one record
        assert [(e.code, e.record_num) for e in loaded.errors] == [
            (missing, 2), (missing, 3), (missing, 4), (missing, 4),
        ]  # fmt: skip
        assert loaded.counts == (5, 0, 0, 0, 4)
        assert (await graph_size(pool))["edges"] == 2


async def test_duplicates_within_a_file_and_across_loads(pool: asyncpg.Pool) -> None:
    data = "~id,~label,tags:String[]\nv1,a;b,x;y;x\nv1,b;c,y;z\nv2,a,\n"
    loaded = await load(pool, data)
    # records: v1 2 labels + 3 values, v1 2 + 2, v2 1; duplicates: x, label b, y
    assert loaded.counts == (10, 3, 0, 0, 0)
    assert (await vertex(pool, "v1") or {})["labels"] == ["a", "b", "c"]
    assert await props(pool, "v1") == {"tags": ["x", "y", "z"]}
    loaded = await load(pool, data)
    assert loaded.counts == (10, 10, 0, 0, 0)  # all of it again: every record a duplicate
    edges = "~id,~from,~to,w:Int\ne1,v1,v2,1\ne1,v1,v2,1\ne2,v2,v1,\n"
    assert (await load(pool, edges)).counts == (5, 2, 0, 0, 0)
    assert (await load(pool, edges)).counts == (5, 5, 0, 0, 0)
    assert await graph_size(pool) == {"vertices": 2, "edges": 2}


def file_lines(header: str, rows: int, row: Callable[[int], str]) -> bytes:
    return (header + "\n" + "".join(row(i) + "\n" for i in range(rows))).encode()


async def index_definitions(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT pg_get_indexdef(i.indexrelid) AS d FROM pg_index i"
        " WHERE i.indrelid = ANY($1::text[]::regclass[]) AND i.indisvalid ORDER BY 1",
        list(GRAPH_TABLES),
    )
    return [r["d"] for r in rows]


async def test_a_large_first_load_rebuilds_the_indexes_and_keeps_them_unique(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_store, "BULK_MIN_ROWS", 10_000)  # the real threshold
    dropped: list[tuple[str, ...]] = []
    drop = index_store.drop_indexes

    async def spy(conn: asyncpg.Connection, tables: Any) -> Any:
        dropped.append(tuple(tables))
        return await drop(conn, tables)

    monkeypatch.setattr(index_store, "drop_indexes", spy)
    before = await index_definitions(pool)
    assert len(before) == 5  # four primary keys and labels by label
    n = 12_000
    vertices = file_lines("~id,~label,n:Int", n, lambda i: f"v{i},person,{i}")
    assert (await load(pool, vertices, chunk=1 << 16)).counts == (2 * n, 0, 0, 0, 0)
    edges = file_lines("~id,~from,~to,w:Double", n, lambda i: f"e{i},v{i},v{(i * 7) % n},0.5")
    assert (await load(pool, edges, chunk=1 << 16)).counts == (2 * n, 0, 0, 0, 0)
    assert dropped == [index_store.VERTEX_TABLES, index_store.EDGE_TABLES]
    assert await index_definitions(pool) == before
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute("INSERT INTO graph_edges SELECT * FROM graph_edges WHERE id = 'e1'")
    # an incremental load, smaller than the graph, keeps the indexes
    more = file_lines("~id,~from,~to,w:Double", 100, lambda i: f"f{i},v{i},v{i + 1},1.5")
    assert (await load(pool, more + b"e1,v1,v7,0.5\n")).counts == (202, 2, 0, 0, 0)
    assert len(dropped) == 2
    assert await graph_size(pool) == {"vertices": n, "edges": n + 100}
    assert (await edge(pool, "e11999") or {})["to"] == f"v{(11999 * 7) % n}"


async def test_a_batch_copy_rejects_is_read_again_and_loaded_in_slices(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_feed, "SLICE_BYTES", 200)
    rows = [f"v{i},name {i},{i}" for i in range(1, 301)]
    rows[149] = "v150,too few fields"
    data = ("~id,name:String,n:Int\n" + "\n".join(rows) + "\n").encode()
    opened = 0

    def chunks() -> AsyncIterator[bytes]:
        async def read() -> AsyncIterator[bytes]:
            nonlocal opened
            opened += 1
            for i in range(0, len(data), 1000):
                yield data[i : i + 1000]

        return read()

    for options, loaded_vertices in ((GREMLIN, 299), (STOP, 149)):
        await pool.execute(f"TRUNCATE {', '.join(GRAPH_TABLES)}")
        opened = 0
        result = await csv_feed.load_csv_feed(
            pool, chunks, uri=URI, options=options, errors=(sink := Sink()), cancelled=never
        )
        assert opened == 2  # the batch held none of its bytes: it read them again
        assert [(e.code, e.record_num) for e in sink.errors] == [("PARSING_ERROR", 150)]
        assert (await graph_size(pool))["vertices"] == loaded_vertices
        assert result.counts.parsing_errors == 1
        assert result.stopped_on_error == options.fail_on_error
    assert await props(pool, "v149") == {"name": ["name 149"], "n": [149]}


class Sink:
    def __init__(self) -> None:
        self.errors: list[Any] = []

    async def add(self, error: Any) -> None:
        self.errors.append(error)


async def never() -> bool:
    return False


@pytest.mark.parametrize("chunk", [1, 2, 5])
async def test_spaces_at_field_edges_are_trimmed_wherever_the_chunks_split(
    pool: asyncpg.Pool, chunk: int
) -> None:
    data = '~id,name\nv1, a\nv2,b \n v3,c\nv4,"d "\nv5,x y\nv6,e '
    loaded = await load(pool, data, chunk=chunk)
    assert loaded.errors == []
    names = {v: (await props(pool, v))["name"] for v in ("v1", "v2", "v3", "v4", "v5", "v6")}
    assert names == {
        "v1": ["a"], "v2": ["b"], "v3": ["c"], "v4": ["d"], "v5": ["x y"], "v6": ["e"],
    }  # fmt: skip
    loaded = await load(pool, "~id,name\nw1,p q\nw2,r\n", chunk=chunk)
    assert (await props(pool, "w1"))["name"] == ["p q"]


async def test_edge_properties_of_every_type_whether_all_are_present_or_not(
    pool: asyncpg.Pool,
) -> None:
    await load(pool, "~id\na\nb\n")
    header = (
        "~id,~from,~to,b:Bool,y:Byte,s:Short,i:Int,l:Long,f:Float,d:Double,t,dt:Date,"
        '"q""k\\"\n'  # a property named q"k\ (its JSON key needs escaping)
    )
    values = (
        "TRUE,-128,32767,-2147483648,9223372036854775807,3.14,1e308,"
        '"a ""b"" \\ c",2020-01-15T10:11:12Z,v'
    )
    no_double = values.replace(",1e308,", ",,")
    special = values.replace(",3.14,1e308,", ",NaN,-Infinity,")
    loaded = await load(
        pool,
        header + f"e1,a,b,{values}\ne2,a,b,{no_double}\ne3,a,b,{special}\n",
        chunk=1 << 16,
    )
    assert loaded.errors == []
    expected: dict[str, Any] = {
        "b": True, "y": -128, "s": 32767, "i": -(2**31), "l": 2**63 - 1,
        "f": pytest.approx(3.14), "d": 1e308, "t": 'a "b" \\ c',
        "dt": dt.datetime(2020, 1, 15, 10, 11, 12, tzinfo=dt.UTC), 'q"k\\': "v",
    }  # fmt: skip
    all_present = (await edge(pool, "e1") or {})["properties"]
    assert all_present == expected
    assert (await edge(pool, "e2") or {})["properties"] == {
        k: v for k, v in expected.items() if k != "d"
    }
    special_values = (await edge(pool, "e3") or {})["properties"]
    assert math.isnan(special_values["f"]) and special_values["d"] == -math.inf
    async with pool.acquire() as conn:
        stored = {
            r["id"]: r["p"]
            for r in await conn.fetch("SELECT id, properties - 'd' AS p FROM graph_edges")
        }
    assert stored["e1"] == stored["e2"]  # built from JSON text or value by value, the same


async def test_concurrent_feeds_in_bulk_and_normal_mode_do_not_deadlock(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_store, "BULK_MIN_ROWS", 100)
    big = file_lines("~id,~label,n:Int(single),tag:String", 400, lambda i: f"v{i},p,{i},t{i % 3}")
    small = file_lines("~id,~label,n:Int(single),tag:String", 20, lambda i: f"w{i},p,{i},t")
    for _ in range(3):
        await pool.execute(f"TRUNCATE {', '.join(GRAPH_TABLES)}")
        results = await asyncio.gather(load(pool, big, chunk=1 << 12), load(pool, small, chunk=64))
        assert [r.counts for r in results] == [(1200, 0, 0, 0, 0), (60, 0, 0, 0, 0)]
        big_edges = file_lines("~id,~from,~to", 500, lambda i: f"e{i},v{i % 400},v{i % 7}")
        small_edges = file_lines("~id,~from,~to", 30, lambda i: f"f{i},w{i % 20},v1")
        results = await asyncio.gather(
            load(pool, big_edges, chunk=1 << 12), load(pool, small_edges, chunk=64)
        )
        assert [r.counts for r in results] == [(500, 0, 0, 0, 0), (30, 0, 0, 0, 0)]
        assert await graph_size(pool) == {"vertices": 420, "edges": 530}


async def test_a_feed_takes_its_table_locks_before_it_reads_them(
    pool: asyncpg.Pool, empty_graph: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bulk and normal feeds lock the vertex tables in one order before reading any of them,
    so that neither can hold a lock the other waits for while it waits itself (a deadlock)."""
    mode = "AccessExclusiveLock" if empty_graph == "bulk" else "RowExclusiveLock"
    monkeypatch.setattr(index_store, "BULK_LOCK_WAIT", "10min")
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("LOCK TABLE graph_vertex_properties IN ACCESS EXCLUSIVE MODE")
        feed = asyncio.create_task(load(pool, "~id,n:Int(single)\nv1,1\n"))

        async def locks() -> set[tuple[str, str, bool]]:
            rows = await pool.fetch(
                "SELECT c.relname, l.mode, l.granted FROM pg_locks l"
                " JOIN pg_class c ON c.oid = l.relation"
                " WHERE c.relname = ANY($1::text[]) AND l.pid NOT IN ($2, pg_backend_pid())",
                list(GRAPH_TABLES),
                holder.get_server_pid(),
            )
            found = {(r["relname"], r["mode"], r["granted"]) for r in rows}
            return found if any(not granted for _, _, granted in found) else set()

        assert await eventually(locks) == {
            ("graph_vertices", mode, True),
            ("graph_vertex_labels", mode, True),
            ("graph_vertex_properties", mode, False),
        }
    assert (await feed).counts == (2, 0, 0, 0, 0)


async def test_bulk_mode_does_not_wait_long_for_a_reader_of_the_graph(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_store, "BULK_MIN_ROWS", 0)
    monkeypatch.setattr(index_store, "BULK_LOCK_WAIT", "50ms")
    dropped: list[Any] = []

    async def spy(conn: asyncpg.Connection, tables: Any) -> Any:
        dropped.append(tables)
        return None

    monkeypatch.setattr(index_store, "drop_indexes", spy)
    async with pool.acquire() as reader, reader.transaction():
        await reader.fetch("SELECT * FROM graph_vertices, graph_edges LIMIT 1")
        # the reader's transaction stays open: the loads keep the indexes and go on
        assert (await load(pool, "~id,n:Int\nv1,1\nv2,2\n")).counts == (4, 0, 0, 0, 0)
        assert (await load(pool, "~id,~from,~to\ne1,v1,v2\n")).counts == (1, 0, 0, 0, 0)
    assert dropped == []
    assert await graph_size(pool) == {"vertices": 2, "edges": 1}
