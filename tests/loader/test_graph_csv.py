"""Gremlin CSV and openCypher CSV feeds into the graph store, against a real PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import math
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[2]
try:
    import loadbay_loader.graph.csv_feed  # noqa: F401
except ModuleNotFoundError:  # the loader package is not installed in this environment yet
    sys.path.insert(0, str(ROOT / "services" / "loader" / "src"))

from loadbay_loader.graph import csv_feed, index_store, read_store  # noqa: E402
from loadbay_loader.graph.csv_feed import HeaderError, feed_kind, parse_header  # noqa: E402
from loadbay_loader.graph.feeds import FeedError, FeedResult, LoadOptions  # noqa: E402
from loadbay_loader.graph.plans import EdgePlan, VertexPlan  # noqa: E402

AIR_ROUTES = ROOT / "tests" / "data" / "air-routes-1.0-gremlin"
URI = "s3://bucket/graph/feed.csv"
GREMLIN = LoadOptions(format="csv", fail_on_error=False)
CYPHER = LoadOptions(format="opencypher", fail_on_error=False)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True, params=["indexed", "bulk"])
async def empty_graph(
    request: pytest.FixtureRequest, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test runs twice: with batches that keep the graph's indexes, and in bulk mode
    (indexes dropped and built again, graph/index_store.py), whose size threshold is lowered
    so that these small files take it whenever a batch is large against its table."""
    bulk_min_rows = 0 if request.param == "bulk" else 10**12
    monkeypatch.setattr(index_store, "BULK_MIN_ROWS", bulk_min_rows)
    await pool.execute(
        "TRUNCATE graph_vertices, graph_vertex_labels, graph_vertex_properties, graph_edges"
    )


# --------------------------------------------------------------------------- helpers


class ListSink:
    def __init__(self) -> None:
        self.errors: list[FeedError] = []

    async def add(self, error: FeedError) -> None:
        self.errors.append(error)


def chunks_of(data: bytes, size: int) -> Callable[[], AsyncIterator[bytes]]:
    async def read() -> AsyncIterator[bytes]:
        for i in range(0, len(data), size):
            yield data[i : i + size]

    return read


def file_chunks(path: Path, size: int = 1 << 16) -> Callable[[], AsyncIterator[bytes]]:
    async def read() -> AsyncIterator[bytes]:
        with path.open("rb") as f:
            while block := f.read(size):
                yield block

    return read


async def never() -> bool:
    return False


@dataclass
class Loaded:
    result: FeedResult
    errors: list[FeedError]

    @property
    def counts(self) -> tuple[int, int, int, int, int]:
        """(totalRecords, totalDuplicates, parsingErrors, datatypeMismatchErrors, insertErrors)"""
        c = self.result.counts
        return (
            c.total_records,
            c.total_duplicates,
            c.parsing_errors,
            c.datatype_mismatch_errors,
            c.insert_errors,
        )

    @property
    def where(self) -> list[tuple[str, int]]:
        return [(e.code, e.record_num) for e in self.errors]


async def load(
    pool: asyncpg.Pool,
    data: str | bytes,
    options: LoadOptions = GREMLIN,
    *,
    uri: str = URI,
    chunk: int = 7,
    cancelled: Callable[[], Any] = never,
) -> Loaded:
    raw = data.encode() if isinstance(data, str) else data
    sink = ListSink()
    result = await csv_feed.load_csv_feed(
        pool, chunks_of(raw, chunk), uri=uri, options=options, errors=sink, cancelled=cancelled
    )
    return Loaded(result, sink.errors)


async def vertex(pool: asyncpg.Pool, id: str, id_space: str = "") -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        return await read_store.get_vertex(conn, id, id_space)


async def edge(pool: asyncpg.Pool, id: str) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        return await read_store.get_edge(conn, id)


async def graph_size(pool: asyncpg.Pool) -> dict[str, int]:
    async with pool.acquire() as conn:
        return await read_store.count_graph(conn)


async def props(pool: asyncpg.Pool, id: str, id_space: str = "") -> dict[str, list[Any]]:
    found = await vertex(pool, id, id_space)
    assert found is not None, f"vertex {id!r} not loaded"
    properties: dict[str, list[Any]] = found["properties"]
    return properties


async def typed_values(pool: asyncpg.Pool, type_: str, cells: list[str]) -> list[Any]:
    """Load one vertex per cell into a property ``p:type_``; per cell, the stored value, or
    "ERROR" where the loader reported a datatype mismatch on that record, or None."""
    body = "".join(f"r{i},{cell}\n" for i, cell in enumerate(cells))
    loaded = await load(pool, f"~id,p:{type_}\n{body}")
    bad = {e.record_num for e in loaded.errors}
    assert all(e.code == "PARSING_ERROR" for e in loaded.errors)
    assert loaded.result.counts.datatype_mismatch_errors == len(bad)
    out: list[Any] = []
    for i in range(len(cells)):
        values = (await props(pool, f"r{i}")).get("p")
        out.append("ERROR" if i + 1 in bad else (values[0] if values else None))
    return out


def plan_of(header: str, options: LoadOptions = GREMLIN) -> VertexPlan | EdgePlan:
    return parse_header(next(csv.reader([header])), options)


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("token", "name", "type_", "array", "single"),
    [
        ("name:String", "name", "String", False, False),
        ("name", "name", "String", False, False),
        ("age:int", "age", "Int", False, False),
        ("age:INT(single)", "age", "Int", False, True),
        ("age:Int(Set)", "age", "Int", False, False),
        ("tags:String[]", "tags", "String", True, False),
        ("tags:string(set)[]", "tags", "String", True, False),
        ("ok:Boolean", "ok", "Bool", False, False),
        ("ok:bool", "ok", "Bool", False, False),
        ("at:Datetime", "at", "Date", False, False),
        ("at:date", "at", "Date", False, False),
        ("n:Byte", "n", "Byte", False, False),
        ("n:short", "n", "Short", False, False),
        ("n:LONG", "n", "Long", False, False),
        ("x:float", "x", "Float", False, False),
        ("x:Double", "x", "Double", False, False),
        (r"a\:b:Int", "a:b", "Int", False, False),
    ],
)
def test_gremlin_property_headers(
    token: str, name: str, type_: str, array: bool, single: bool
) -> None:
    plan = plan_of(f"~id,{token}")
    assert isinstance(plan, VertexPlan)
    (col,) = plan.props
    assert (col.name, col.type, col.array, col.single, col.field) == (name, type_, array, single, 1)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("~id,x:Int(single)[]", "single-cardinality property cannot be an array"),
        ("~id,x:Int[](set)", "unknown type"),
        ("~id,x:Integer", "unknown type"),
        ("~id,x:Int(many)", "cardinality must be single or set"),
        ("~id,~ID", "unknown system column"),
        ("~id,~id", "appears twice"),
        ("~id,my name:String", "cannot hold spaces"),
        ("~id,,x", "empty name"),
        ("~id,a:Int,a:String", "two columns"),
        ("name:String", "no ~id column"),
        ("~label", "no ~id column"),
        ("~id,~from,~label", "no ~to column"),
        ("~from,~to", "no ~id column"),
        ("~id,~from,~to,w:Double[]", "edge properties are single-valued"),
        ("~id,~from,~to,w:Double(set)", "edge properties are single-valued"),
    ],
)
def test_gremlin_header_errors(header: str, problem: str) -> None:
    with pytest.raises(HeaderError, match=problem):
        plan_of(header)


def test_gremlin_edge_header_plan() -> None:
    plan = plan_of("~label,~to,w:Double(single),~from,~id")
    assert isinstance(plan, EdgePlan)
    assert (plan.id_field, plan.from_field, plan.to_field, plan.label_field) == (4, 3, 1, 0)
    assert [(c.name, c.type, c.single) for c in plan.props] == [("w", "Double", True)]


@pytest.mark.parametrize(
    ("line", "fmt", "kind"),
    [
        ("~id,~label,name:String\r\n", "csv", "vertex"),
        ("\ufeff~id,~from,~to,~label\n", "csv", "edge"),
        ("~to,~id", "csv", "edge"),
        ("name:String", "csv", "vertex"),
        (":ID(person),name,:LABEL", "opencypher", "vertex"),
        (":ID,:START_ID(person),:END_ID(movie),:TYPE", "opencypher", "edge"),
        (":START_ID,:END_ID", "opencypher", "edge"),
        ("name:ID,born:Int", "opencypher", "vertex"),
    ],
)
def test_feed_kind(line: str, fmt: Any, kind: str) -> None:
    assert feed_kind(line, fmt) == kind


@pytest.mark.parametrize(
    ("header", "edge_ids", "problem"),
    [
        (":ID,tags:String[]", None, "no array types"),
        (":ID,x:Integer", None, "unknown type"),
        ("name:String", None, r"no :ID column"),
        (":ID,:ID(x)", None, "appears twice"),
        (":START_ID,:END_ID,:TYPE", None, r"no :ID column"),
        (":START_ID,:END_ID,:TYPE", True, r"no :ID column"),
        (":ID,:START_ID,:END_ID,:TYPE", False, "must not have an :ID column"),
        (":ID,:START_ID,:TYPE", None, r"no :END_ID column"),
        (":ID,:START_ID,:END_ID,:LABEL", None, ":LABEL belongs in node files"),
        (":ID,x:LABEL", None, "only :ID can be stored as a property"),
        (":ID,:LABEL(x)", None, "take an id space"),
    ],
)
def test_opencypher_header_errors(header: str, edge_ids: bool | None, problem: str) -> None:
    options = LoadOptions(format="opencypher", user_provided_edge_ids=edge_ids)
    with pytest.raises(HeaderError, match=problem):
        plan_of(header, options)


# --------------------------------------------------------------------------- value types


async def test_bool_is_true_only_for_true_in_any_case(pool: asyncpg.Pool) -> None:
    cells = ["true", "TRUE", "True", "false", "yes", "1", "0", "t", ""]
    assert await typed_values(pool, "Bool", cells) == [
        True, True, True, False, False, False, False, False, None,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("type_", "cells", "expected"),
    [
        ("Byte", ["127", "-128", "128", "-129", "+5", "007"], [127, -128, "ERROR", "ERROR", 5, 7]),
        ("Short", ["32767", "-32768", "32768", "-32769"], [32767, -32768, "ERROR", "ERROR"]),
        (
            "Int",
            ["2147483647", "-2147483648", "2147483648", "1.0", "1_000", "0x1F", "12abc", " 42 "],
            [2147483647, -2147483648, "ERROR", "ERROR", "ERROR", "ERROR", "ERROR", 42],
        ),
        (
            "Long",
            ["9223372036854775807", "-9223372036854775808", "9223372036854775808", "0b101"],
            [9223372036854775807, -9223372036854775808, "ERROR", "ERROR"],
        ),
    ],
)
async def test_integer_types_and_ranges(
    pool: asyncpg.Pool, type_: str, cells: list[str], expected: list[Any]
) -> None:
    values = await typed_values(pool, type_, cells)
    assert values == expected
    assert all(type(v) is int for v in values if v != "ERROR")


async def test_double_takes_infinity_and_nan_but_not_inf(pool: asyncpg.Pool) -> None:
    cells = ["1.5", "-2.5e3", ".5", "5.", "1e308", "Infinity", "-Infinity", "+Infinity", "NaN"]
    cells += ["INF", "inf", "infinity", "nan", "0x10", "1e400", "1,5", "1.5d"]
    values = await typed_values(pool, "Double", [f'"{c}"' for c in cells])
    assert values[:5] == [1.5, -2500.0, 0.5, 5.0, 1e308]
    assert values[5:8] == [math.inf, -math.inf, math.inf]
    assert math.isnan(values[8])
    assert values[9:] == ["ERROR"] * 8


async def test_float_is_single_precision(pool: asyncpg.Pool) -> None:
    values = await typed_values(pool, "Float", ["3.14", "1e38", "1e39", "NaN", "Infinity"])
    assert values[0] == pytest.approx(3.14)
    assert values[1:3] == [pytest.approx(1e38), "ERROR"]  # out of a 32-bit float's range
    assert math.isnan(values[3])
    assert values[4] == math.inf


async def test_dates_are_iso_8601_stored_as_epoch_milliseconds(pool: asyncpg.Pool) -> None:
    utc = dt.UTC
    cells = [
        "2020-01-15",
        "2020-01-15T10:11",
        "2020-01-15T10:11:12",
        "2020-01-15T10:11:12Z",
        "2020-01-15T10:11:12.250+01:30",
        "2020-13-01",
        "2020-02-30",
        "2020-01-15 10:11",
        "15/01/2020",
        "2020-01-15Z",
    ]
    assert await typed_values(pool, "Date", cells) == [
        dt.datetime(2020, 1, 15, tzinfo=utc),
        dt.datetime(2020, 1, 15, 10, 11, tzinfo=utc),
        dt.datetime(2020, 1, 15, 10, 11, 12, tzinfo=utc),
        dt.datetime(2020, 1, 15, 10, 11, 12, tzinfo=utc),
        dt.datetime(2020, 1, 15, 8, 41, 12, 250000, tzinfo=utc),
        "ERROR", "ERROR", "ERROR", "ERROR", "ERROR",
    ]  # fmt: skip
    async with pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT value FROM graph_vertex_properties WHERE vertex_id = 'r0'"
        )
    assert stored == "1579046400000"


async def test_strings_keep_backslashes_quotes_and_line_breaks(pool: asyncpg.Pool) -> None:
    data = '~id,s:String\nv1,"a\\tb"\nv2,"say ""hi"", twice"\nv3,"two\nlines"\nv4,  padded  \n'
    loaded = await load(pool, data)
    assert loaded.errors == []
    assert [(await props(pool, v))["s"] for v in ("v1", "v2", "v3", "v4")] == [
        ["a\\tb"], ['say "hi", twice'], ["two\nlines"], ["padded"],
    ]  # fmt: skip


async def test_neptune_example_vertex_row(pool: asyncpg.Pool) -> None:
    data = (
        "~id,name:String,age:Int,lang:String,interests:String[],~label\n"
        'v1,"marko",29,,"sailing;graphs",person\n'
    )
    loaded = await load(pool, data)
    assert loaded.counts == (5, 0, 0, 0, 0)  # label, name, age, two interests
    assert await vertex(pool, "v1") == {
        "id": "v1",
        "id_space": "",
        "labels": ["person"],
        "properties": {"age": [29], "interests": ["graphs", "sailing"], "name": ["marko"]},
    }


# --------------------------------------------------------------------------- arrays, labels


async def test_arrays_split_on_unescaped_semicolons(pool: asyncpg.Pool) -> None:
    data = (
        "~id,tags:String[],nums:Int(set)[]\n"
        'v1,"a;b; c ;;d",1;2;3\n'
        "v2,a\\;b;c,4\n"
        "v3,,x;5\n"
        "v4,a;a,7;7\n"
    )
    loaded = await load(pool, data)
    assert (await props(pool, "v1")) == {"tags": ["a", "b", "c", "d"], "nums": [1, 2, 3]}
    assert (await props(pool, "v2")) == {"tags": ["a;b", "c"], "nums": [4]}
    assert (await props(pool, "v3")) == {"nums": [5]}
    assert (await props(pool, "v4")) == {"tags": ["a"], "nums": [7]}
    # records: v1 1+4+3, v2 1+2+1, v3 1+2 (x attempted), v4 1+2+2; duplicates: a and 7 again
    assert loaded.counts == (20, 2, 0, 1, 0)
    assert loaded.where == [("PARSING_ERROR", 3)]


async def test_multiple_labels_and_default_labels(pool: asyncpg.Pool) -> None:
    await load(pool, "~id,~label\nv1,person;employee\nv2,a\\;b\nv3, x ; y \n")
    await load(pool, "~id,name\nv4,n\n")
    assert (await vertex(pool, "v1") or {})["labels"] == ["employee", "person"]
    assert (await vertex(pool, "v2") or {})["labels"] == ["a;b"]
    assert (await vertex(pool, "v3") or {})["labels"] == ["x", "y"]
    assert (await vertex(pool, "v4") or {})["labels"] == ["vertex"]
    await load(pool, "~id,~from,~to\ne1,v1,v2\n")
    await load(pool, "~id,~from,~to,~label\ne2,v1,v2,likes;knows\n")
    assert (await edge(pool, "e1") or {})["label"] == "edge"
    assert (await edge(pool, "e2") or {})["label"] == "likes;knows"  # edges have one label
    async with pool.acquire() as conn:
        assert await read_store.count_by_label(conn) == {
            "vertices": {"person": 1, "employee": 1, "a;b": 1, "x": 1, "y": 1, "vertex": 1},
            "edges": {"edge": 1, "likes;knows": 1},
        }


async def test_blank_labels_and_ids_are_parse_errors(pool: asyncpg.Pool) -> None:
    loaded = await load(pool, '~id,~label\nv1,\nv2,""\nv3, ; \n,person\n"",person\nv6,ok\n')
    assert loaded.where == [("PARSING_ERROR", n) for n in (1, 2, 3, 4)]
    assert "blank ~label" in loaded.errors[0].message
    assert "blank ~id" in loaded.errors[3].message
    assert (await vertex(pool, "") or {})["labels"] == ["person"]  # "" is a valid id
    assert await graph_size(pool) == {"vertices": 2, "edges": 0}
    await load(pool, "~id\nv1\nv2\n")
    loaded = await load(pool, "~id,~from,~to,~label\ne1,v1,v2,\ne2,,v2,x\ne3,v1,v2,x\n")
    assert loaded.where == [("PARSING_ERROR", 1), ("PARSING_ERROR", 2)]
    assert await graph_size(pool) == {"vertices": 4, "edges": 1}
    long = "x" * 1025  # ids are index keys: at most 1024 bytes
    loaded = await load(pool, f"~id\n{long}\n")
    assert loaded.where == [("PARSING_ERROR", 1)] and "longer than 1024" in loaded.errors[0].message
    loaded = await load(pool, f"~id,~from,~to\n{long},v1,v2\ne4,v1,v2\n")
    assert loaded.where == [("PARSING_ERROR", 1)] and (await graph_size(pool))["edges"] == 2


# --------------------------------------------------------------------------- cardinality


async def test_set_cardinality_collects_values_and_counts_duplicates(pool: asyncpg.Pool) -> None:
    loaded = await load(pool, "~id,name:String\nv1,a\nv1,b\nv1,a\n")
    assert (await props(pool, "v1")) == {"name": ["a", "b"]}
    assert loaded.counts == (6, 3, 0, 0, 0)  # the default label twice and "a" once again
    loaded = await load(pool, "~id,name:String(set)\nv1,c\nv1,b\n")
    assert (await props(pool, "v1")) == {"name": ["a", "b", "c"]}
    assert loaded.counts == (4, 3, 0, 0, 0)


async def test_single_cardinality_conflicts_without_update(pool: asyncpg.Pool) -> None:
    loaded = await load(pool, "~id,age:Int(single)\nv1,1\nv1,1\nv1,2\nv2,5\n")
    assert loaded.counts == (8, 3, 0, 0, 1)  # v1's label twice again, 1 again; 2 conflicts
    assert loaded.where == [("SINGLE_CARDINALITY_VIOLATION", 3)]
    assert "updateSingleCardinalityProperties" in loaded.errors[0].message
    assert (await props(pool, "v1")) == {"age": [1]}
    loaded = await load(pool, "~id,age:Int(single)\nv1,3\nv2,5\n")
    assert loaded.where == [("SINGLE_CARDINALITY_VIOLATION", 1)]
    assert loaded.counts == (4, 3, 0, 0, 1)
    assert (await props(pool, "v1")) == {"age": [1]}


async def test_single_cardinality_replaced_with_update(pool: asyncpg.Pool) -> None:
    update = LoadOptions(
        format="csv", fail_on_error=False, update_single_cardinality_properties=True
    )
    loaded = await load(pool, "~id,age:Int(single)\nv1,1\nv1,1\nv1,2\n", update)
    assert loaded.errors == []
    assert loaded.counts == (6, 3, 0, 0, 0)  # label twice again, the second 1 changes nothing
    assert (await props(pool, "v1")) == {"age": [2]}
    loaded = await load(pool, "~id,age:Int(single)\nv1,5\n", update)
    assert (await props(pool, "v1")) == {"age": [5]}
    assert loaded.counts == (2, 1, 0, 0, 0)
    # a single value replaces a set of values too
    await load(pool, "~id,tag:String[]\nv2,a;b\n", update)
    await load(pool, "~id,tag:String(single)\nv2,c\n", update)
    assert (await props(pool, "v2")) == {"tag": ["c"]}


async def test_edge_properties_are_single_valued(pool: asyncpg.Pool) -> None:
    await load(pool, "~id\nv1\nv2\n")
    edges = "~id,~from,~to,~label,w:Double,n:Int\n"
    loaded = await load(pool, edges + "e1,v1,v2,knows,0.5,\n")
    assert loaded.counts == (2, 0, 0, 0, 0)
    loaded = await load(pool, edges + "e1,v1,v2,knows,0.5,1\ne1,v1,v2,knows,0.7,1\n")
    # e1 twice (dups), 0.5 again (dup), 1 new, 1 again (dup), 0.7 conflicts
    assert loaded.counts == (6, 4, 0, 0, 1)
    assert loaded.where == [("SINGLE_CARDINALITY_VIOLATION", 2)]
    assert (await edge(pool, "e1") or {})["properties"] == {"w": 0.5, "n": 1}
    update = LoadOptions(
        format="csv", fail_on_error=False, update_single_cardinality_properties=True
    )
    loaded = await load(pool, edges + "e1,v1,v2,knows,0.7,\ne1,v1,v2,knows,0.9,\n", update)
    assert loaded.errors == []
    assert (await edge(pool, "e1") or {})["properties"] == {"w": 0.9, "n": 1}


async def test_edge_id_reused_for_another_edge(pool: asyncpg.Pool) -> None:
    await load(pool, "~id\nv1\nv2\n")
    loaded = await load(
        pool, "~id,~from,~to,~label\ne1,v1,v2,a\ne1,v2,v1,a\ne1,v1,v2,b\ne1,v1,v2,a\n"
    )
    assert loaded.where == [
        ("ID_ASSIGNED_TO_MULTIPLE_EDGES", 2),
        ("ID_ASSIGNED_TO_MULTIPLE_EDGES", 3),
    ]
    assert loaded.counts == (4, 1, 0, 0, 2)
    loaded = await load(pool, "~id,~from,~to,~label\ne1,v2,v2,a\n")
    assert loaded.where == [("ID_ASSIGNED_TO_MULTIPLE_EDGES", 1)]
    assert (await edge(pool, "e1") or {})["to"] == "v2" and (await graph_size(pool))["edges"] == 1


# --------------------------------------------------------------------------- empty strings


@pytest.mark.parametrize(("allow", "expected"), [(False, {}), (True, {"s": [""]})])
async def test_allow_empty_strings(
    pool: asyncpg.Pool, allow: bool, expected: dict[str, Any]
) -> None:
    options = LoadOptions(format="csv", fail_on_error=False, allow_empty_strings=allow)
    loaded = await load(pool, '~id,s:String,i:Int,b:Bool\nv1,"","",""\nv2,,,\n', options)
    assert loaded.errors == []
    assert (await props(pool, "v1")) == expected  # "" is never an Int or a Bool: no value
    assert (await props(pool, "v2")) == {}  # blank is no value either way
    assert loaded.counts == (2 + len(expected), 0, 0, 0, 0)
    await load(pool, "~id\nv3\n")
    loaded = await load(pool, '~id,~from,~to,note:String\ne1,v3,v3,""\n', options)
    assert (await edge(pool, "e1") or {})["properties"] == ({"note": ""} if allow else {})


# --------------------------------------------------------------------------- duplicates


async def test_identical_lines_are_duplicates(pool: asyncpg.Pool) -> None:
    row = "v1,person,marko,a\n"
    loaded = await load(pool, "~id,~label,name:String,team:String\n" + row * 2)
    assert loaded.counts == (6, 3, 0, 0, 0)  # Neptune's example: 6 records, 3 duplicates
    await load(pool, "~id\nv2\n")
    edges = "~id,~from,~to,~label,w:Double\ne1,v1,v2,knows,0.5\n"
    loaded = await load(pool, edges + "e1,v1,v2,knows,0.5\n")
    assert loaded.counts == (4, 2, 0, 0, 0)
    loaded = await load(pool, edges)  # loaded before: everything is a duplicate
    assert loaded.counts == (2, 2, 0, 0, 0)
    assert await graph_size(pool) == {"vertices": 2, "edges": 1}


# --------------------------------------------------------------------------- errors


async def test_missing_system_headers_name_the_file(pool: asyncpg.Pool) -> None:
    for header in ("name:String\nx\n", "~id,~from,~label\ne1,v1,x\n", "~from,~to\nv1,v2\n"):
        uri = "s3://bucket/bad/" + header[:3]
        loaded = await load(pool, header, uri=uri)
        (error,) = loaded.errors
        assert (error.code, error.file_name, error.record_num) == ("PARSING_ERROR", uri, 0)
        assert uri in error.message and "column (required in" in error.message
        assert loaded.counts == (0, 0, 1, 0, 0)
        assert loaded.result.stopped_on_error is False
    loaded = await load(pool, "name:String\n", LoadOptions(format="csv"))
    assert loaded.result.stopped_on_error is True
    loaded = await load(pool, b"")
    assert "empty" in loaded.errors[0].message


async def test_edges_to_missing_vertices(pool: asyncpg.Pool) -> None:
    await load(pool, "~id\nv1\nv2\n")
    data = "~id,~from,~to,w:Int\ne1,v1,v2,1\ne2,v1,v9,2\ne3,v8,v2,3\ne4,v2,v1,4\n"
    loaded = await load(pool, data)
    assert loaded.where == [
        ("FROM_OR_TO_VERTEX_ARE_MISSING", 2), ("FROM_OR_TO_VERTEX_ARE_MISSING", 3),
    ]  # fmt: skip
    assert '~to vertex "v9" does not exist' in loaded.errors[0].message
    assert loaded.counts == (6, 0, 0, 0, 2)
    assert await graph_size(pool) == {"vertices": 2, "edges": 2}


@pytest.mark.parametrize("fail_on_error", [True, False])
async def test_fail_on_error_stops_at_the_first_error(
    pool: asyncpg.Pool, fail_on_error: bool
) -> None:
    await load(pool, "~id\nv1\nv2\n")
    options = LoadOptions(format="csv", fail_on_error=fail_on_error)
    data = "~id,~from,~to,w:Int\ne1,v1,v2,1\ne2,v1,v2,2\ne3,v1,v2,x\ne4,v1,v9,4\ne5,v1,v2,5\n"
    loaded = await load(pool, data, options)
    async with pool.acquire() as conn:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM graph_edges ORDER BY id")]
    if fail_on_error:
        assert loaded.where == [("PARSING_ERROR", 3)]
        assert ids == ["e1", "e2"]
        assert loaded.counts == (5, 0, 0, 1, 0)  # e1, e2 with a value each, e3 attempted
        assert loaded.result.stopped_on_error is True
    else:
        assert loaded.where == [("PARSING_ERROR", 3), ("FROM_OR_TO_VERTEX_ARE_MISSING", 4)]
        assert ids == ["e1", "e2", "e3", "e5"]
        assert (await edge(pool, "e3") or {})["properties"] == {}  # only the bad value is lost
        assert loaded.counts == (9, 0, 0, 1, 1)
        assert loaded.result.stopped_on_error is False


@pytest.mark.parametrize("chunk", [3, 1 << 16])
async def test_malformed_csv_records_are_parse_errors(pool: asyncpg.Pool, chunk: int) -> None:
    data = (
        "~id,name:String,n:Int\n"
        "v1,a,1\n"
        "v2,b\n"  # too few fields
        "v3,c,3,extra\n"  # too many
        'v4,"multi\nline",4\n'  # fine: a quoted line break
        "v5,\xff\xfe,5\n"  # not UTF-8 (written below as raw bytes)
        'v6,"never closed,6\n'
        "v7,g,7\n"
    ).encode("latin-1")
    loaded = await load(pool, data, chunk=chunk)
    assert loaded.where == [("PARSING_ERROR", n) for n in (2, 3, 5, 6)]
    assert "2 fields, the header has 3" in loaded.errors[0].message
    assert "not valid UTF-8" in loaded.errors[2].message
    assert "unterminated quoted field" in loaded.errors[3].message
    assert (await props(pool, "v4"))["name"] == ["multi\nline"]
    assert sorted((await graph_size(pool)).items()) == [("edges", 0), ("vertices", 3)]
    assert loaded.counts == (3 * 3 + 4, 0, 4, 0, 0)
    stopped = await load(pool, data, LoadOptions(format="csv"), chunk=chunk)
    assert stopped.where == [("PARSING_ERROR", 2)]
    assert stopped.result.stopped_on_error is True


async def test_end_of_data_marker_line_is_data(pool: asyncpg.Pool) -> None:
    # PostgreSQL before 18 reads a line holding only \. as the end of COPY data.
    loaded = await load(pool, "~id\nv1\n\\.\nv2\n")
    assert loaded.errors == []
    assert await graph_size(pool) == {"vertices": 3, "edges": 0}
    assert await vertex(pool, "\\.") is not None


async def test_bom_crlf_and_trailing_blank_lines(pool: asyncpg.Pool) -> None:
    loaded = await load(pool, "\ufeff~id,name:String\r\nv1,a\r\nv2,b\r\n\r\n\r\n", chunk=2)
    assert loaded.errors == []
    assert loaded.counts == (4, 0, 0, 0, 0)
    assert (await props(pool, "v2")) == {"name": ["b"]}


async def test_batches_keep_record_numbers_and_commit_as_they_go(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_feed, "BATCH_BYTES", 40)
    rows = [f'v{i},"n\n{i}",{i}' if i % 7 == 0 else f"v{i},n{i},{i}" for i in range(1, 31)]
    rows[16] = "v17,n17,bad"
    rows[22] = "v23,n23"  # a malformed record in a later batch: that batch takes the slow path
    data = "~id,name:String,n:Int\n" + "\n".join(rows) + "\n"
    loaded = await load(pool, data, chunk=5)
    assert loaded.where == [("PARSING_ERROR", 17), ("PARSING_ERROR", 23)]
    assert (await graph_size(pool))["vertices"] == 29
    assert (await props(pool, "v14")) == {"name": ["n\n14"], "n": [14]}
    assert loaded.counts == (29 * 3 + 1, 0, 1, 1, 0)  # v17's bad n is attempted; v23 is one
    await pool.execute("TRUNCATE graph_vertices, graph_vertex_labels, graph_vertex_properties")
    stopped = await load(pool, data, LoadOptions(format="csv"), chunk=5)
    assert stopped.where == [("PARSING_ERROR", 17)]
    assert (await graph_size(pool))["vertices"] == 16


async def test_cancel_between_batches(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_feed, "BATCH_BYTES", 20)
    asked = 0

    async def after_one_batch() -> bool:
        nonlocal asked
        asked += 1
        return asked > 1

    data = "~id\n" + "".join(f"vertex{i}\n" for i in range(20))
    loaded = await load(pool, data, cancelled=after_one_batch)
    assert 0 < (await graph_size(pool))["vertices"] < 20
    assert loaded.result.counts.total_records == (await graph_size(pool))["vertices"]


# --------------------------------------------------------------------------- openCypher


async def test_opencypher_nodes_id_spaces_and_labels(pool: asyncpg.Pool) -> None:
    loaded = await load(
        pool,
        ":ID(person),name:String,born:Int,:LABEL\n1,Alice,1970,Person;Actor\n2,Bob,,\n",
        CYPHER,
    )
    assert loaded.errors == [] and loaded.counts == (6, 0, 0, 0, 0)
    await load(
        pool, "title:ID(movie),released:Date,at:DateTime\n1,2001-13-45,2001-01-01T00:00Z\n", CYPHER
    )
    alice = await vertex(pool, "1", "person")
    assert alice == {
        "id": "1",
        "id_space": "person",
        "labels": ["Actor", "Person"],
        "properties": {"born": [1970], "name": ["Alice"]},
    }
    assert (await vertex(pool, "2", "person") or {})["labels"] == ["vertex"]
    movie = await props(pool, "1", "movie")
    # name:ID keeps the id as a property; Date is an auto-cast type: stored as written
    assert movie == {
        "title": ["1"],
        "released": ["2001-13-45"],
        "at": [dt.datetime(2001, 1, 1, tzinfo=dt.UTC)],
    }
    assert await vertex(pool, "1") is None  # no id space: another vertex
    loaded = await load(pool, ":ID(person),name:String,:LABEL\n1,Alicia,Director\n", CYPHER)
    # openCypher never updates a property: the first value stays, the new one is a duplicate
    assert loaded.errors == [] and loaded.counts == (2, 1, 0, 0, 0)
    assert (await vertex(pool, "1", "person") or {})["labels"] == ["Actor", "Director", "Person"]
    assert (await props(pool, "1", "person"))["name"] == ["Alice"]


async def test_opencypher_relationships(pool: asyncpg.Pool) -> None:
    await load(pool, ":ID(person)\np1\np2\n", CYPHER)
    await load(pool, ":ID(movie)\nm1\n", CYPHER)
    data = (
        ":ID,:START_ID(person),:END_ID(movie),:TYPE,role:String\n"
        "r1,p1,m1,ACTED_IN,Neo\n"
        "r2,p2,p1,X,\n"
    )
    loaded = await load(pool, data, CYPHER)
    assert loaded.where == [("FROM_OR_TO_VERTEX_ARE_MISSING", 2)]
    assert "(id space movie)" in loaded.errors[0].message
    assert await edge(pool, "r1") == {
        "id": "r1",
        "label": "ACTED_IN",
        "from": "p1",
        "to": "m1",
        "from_space": "person",
        "to_space": "movie",
        "properties": {"role": "Neo"},
    }
    loaded = await load(pool, ":ID,:START_ID(person),:END_ID(movie)\nr3,p2,m1\n", CYPHER)
    assert (await edge(pool, "r3") or {})["label"] == "edge"


@pytest.mark.parametrize("edge_ids", [None, True, False])
async def test_opencypher_user_provided_edge_ids(pool: asyncpg.Pool, edge_ids: bool | None) -> None:
    await load(pool, ":ID\na\nb\n", CYPHER)
    options = LoadOptions(format="opencypher", fail_on_error=False, user_provided_edge_ids=edge_ids)
    with_ids = await load(pool, ":ID,:START_ID,:END_ID,:TYPE\nr1,a,b,T\nr1,a,b,T\n", options)
    without = await load(pool, ":START_ID,:END_ID,:TYPE\na,b,T\na,b,T\n", options)
    async with pool.acquire() as conn:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM graph_edges")]
    if edge_ids is False:
        assert (
            with_ids.where == [("PARSING_ERROR", 0)]
            and "must not have an :ID" in with_ids.errors[0].message
        )
        assert without.errors == [] and without.counts == (2, 0, 0, 0, 0)
        assert len(set(ids)) == 2 and "r1" not in ids  # generated: no duplicates can be seen
    else:
        assert with_ids.errors == [] and with_ids.counts == (2, 1, 0, 0, 0)
        assert (
            without.where == [("PARSING_ERROR", 0)] and "no :ID column" in without.errors[0].message
        )
        assert ids == ["r1"]


# --------------------------------------------------------------------------- air-routes


def expected_records(path: Path) -> int:
    """One record per row (its label, or the edge) plus one per non-empty property cell."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows)
        system = [i for i, name in enumerate(header) if name.startswith("~")]
        return sum(1 + sum(1 for i, v in enumerate(r) if v and i not in system) for r in rows)


async def test_air_routes_graph(pool: asyncpg.Pool) -> None:
    nodes, edges = (
        AIR_ROUTES / "air-routes-latest-nodes.csv",
        AIR_ROUTES / "air-routes-latest-edges.csv",
    )
    if not nodes.exists():
        pytest.skip(f"test data not found: {nodes}")
    assert b"\r\n" in nodes.read_bytes()[:2000]  # CRLF line endings
    kinds = [feed_kind(p.open().readline(), "csv") for p in (nodes, edges)]
    assert kinds == ["vertex", "edge"]
    results = []
    for path in (nodes, edges):
        sink = ListSink()
        result = await csv_feed.load_csv_feed(
            pool,
            file_chunks(path),
            uri=f"s3://bucket/{path.name}",
            options=LoadOptions(format="csv"),
            errors=sink,
            cancelled=never,
        )
        assert sink.errors == []
        results.append(result.counts)
    assert [c.total_records for c in results] == [expected_records(nodes), expected_records(edges)]
    assert [c.total_duplicates for c in results] == [0, 0]
    assert await graph_size(pool) == {"vertices": 3749, "edges": 57645}
    async with pool.acquire() as conn:
        assert await read_store.count_by_label(conn) == {
            "vertices": {"airport": 3504, "country": 237, "continent": 7, "version": 1},
            "edges": {"route": 50637, "contains": 7008},
        }
    atl = await vertex(pool, "1")
    assert atl is not None and atl["labels"] == ["airport"]
    assert atl["properties"] == {
        "type": ["airport"], "code": ["ATL"], "icao": ["KATL"],
        "desc": ["Hartsfield - Jackson Atlanta International Airport"], "region": ["US-GA"],
        "runways": [5], "longest": [12390], "elev": [1026], "country": ["US"], "city": ["Atlanta"],
        "lat": [33.6366996765137], "lon": [-84.4281005859375],
    }  # fmt: skip
    bos = await props(pool, "5")
    assert (bos["code"], bos["runways"], bos["lat"]) == (["BOS"], [6], [42.36429977])
    assert all(type(v[0]) is int for v in (bos["runways"], bos["longest"], bos["elev"]))
    assert type(bos["lon"][0]) is float
    assert (await props(pool, "0"))["date"] == ["2025-10-22 13:56:29 UTC"]  # a String column
    route = await edge(pool, "3749")
    assert route == {
        "id": "3749", "label": "route", "from": "1", "to": "3", "from_space": "", "to_space": "",
        "properties": {"dist": 809},
    }  # fmt: skip
    async with pool.acquire() as conn:
        contains = await conn.fetchrow(
            "SELECT properties, property_types FROM graph_edges WHERE label = 'contains' LIMIT 1"
        )
    assert contains["properties"] == "{}"  # a blank dist is no value


@pytest.mark.parametrize("chunk", [7, 1 << 16])
async def test_a_line_longer_than_the_record_limit_ends_the_feed_with_a_parsing_error(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    from loadbay_loader.streaming import limits

    monkeypatch.setattr(limits, "_current", limits.InputLimits(max_record_bytes=100))
    data = "~id,name\nv1,a\nv2,b\nv3," + "c" * 200 + "\nv4,d\n"
    loaded = await load(pool, data, chunk=chunk)
    assert loaded.where == [("PARSING_ERROR", 3)]
    assert "longer than 100 bytes" in loaded.errors[0].message
    assert loaded.counts[2] == 1  # whatever failOnError says, the rest is not read
    assert await vertex(pool, "v2") is not None and await vertex(pool, "v4") is None


async def test_a_header_wider_than_the_column_limit_is_a_parsing_error(pool: asyncpg.Pool) -> None:
    header = "~id," + ",".join(f"p{i}" for i in range(1500))
    loaded = await load(pool, header + "\nv1" + "," * 1500 + "\n", chunk=1 << 16)
    assert loaded.where == [("PARSING_ERROR", 0)]
    assert "1501 columns: a header may have at most 1000" in loaded.errors[0].message


async def test_an_edge_file_with_many_properties_loads(pool: asyncpg.Pool) -> None:
    """More than 50 properties: past PostgreSQL's 100 arguments of jsonb_build_object."""
    await load(pool, "~id\na\nb\n")
    header = "~id,~from,~to," + ",".join(f"p{i}:Int" for i in range(120))
    loaded = await load(pool, header + "\ne1,a,b," + ",".join("1" * 120) + "\n", chunk=1 << 16)
    assert loaded.errors == [] and loaded.counts[0] == 121
    found = await edge(pool, "e1")
    assert found is not None
