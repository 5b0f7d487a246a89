"""The RDF feed loaders (graph/rdf.py) and the quad store (graph/rdf_store.py) against a real
PostgreSQL (the stack's): every W3C conformance test of N-Triples, N-Quads, Turtle and
RDF/XML, then Neptune's parserConfiguration, counters, errors and streaming."""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pyoxigraph as ox
import pytest

try:
    import loadbay_loader.graph.rdf  # noqa: F401
except ModuleNotFoundError:  # the loader package is not installed in this environment yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "services" / "loader" / "src"))

from loadbay_loader.graph import rdf_store
from loadbay_loader.graph.feeds import (
    DEFAULT_NAMED_GRAPH,
    FeedError,
    FeedResult,
    Format,
    LoadOptions,
)
from loadbay_loader.graph.rdf import BATCH_LINES, load_rdf_feed
from loadbay_loader.streaming import limits
from loadbay_loader.streaming.compression import decompressed
from loadbay_loader.streaming.limits import InputLimits

W3C = Path(__file__).resolve().parents[1] / "data" / "w3c-rdf-tests" / "rdf" / "rdf11"
SUITES: dict[str, Format] = {
    "rdf-n-triples": "ntriples",
    "rdf-n-quads": "nquads",
    "rdf-turtle": "turtle",
    "rdf-xml": "rdfxml",
}
# Each suite's README: the base IRI of a test file is the IRI it is published at.
W3C_BASE = "https://w3c.github.io/rdf-tests/rdf/rdf11/"
XSD = "http://www.w3.org/2001/XMLSchema#"


def w3c_index(suite: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((W3C / suite / "tests-index.json").read_text())
    return entries


def w3c_cases() -> list[Any]:
    return [
        pytest.param(suite, entry, id=f"{suite}{entry['id']}")
        for suite in SUITES
        for entry in w3c_index(suite)
    ]


def canonical(ntriples: str) -> ox.Dataset:
    """The statements of an N-Triples document with blank nodes renamed canonically, so two
    documents that differ only in blank node labels compare equal."""
    dataset = ox.Dataset(ox.parse(ntriples.encode(), format=ox.RdfFormat.N_TRIPLES))
    dataset.canonicalize(ox.CanonicalizationAlgorithm.RDFC_1_0)
    return dataset


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def store(pool: asyncpg.Pool) -> asyncpg.Pool:
    """The shared database with an empty quad store."""
    await pool.execute("TRUNCATE quads")
    return pool


# --------------------------------------------------------------------------- helpers


class Errors:
    """An ErrorSink that keeps everything."""

    def __init__(self) -> None:
        self.items: list[FeedError] = []

    async def add(self, error: FeedError) -> None:
        self.items.append(error)


async def chunks_of(data: bytes, size: int = 1 << 16) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def not_cancelled() -> bool:
    return False


async def load(
    pool: asyncpg.Pool,
    data: bytes,
    format: Format,
    *,
    uri: str = "s3://bucket/feed",
    chunk: int = 1 << 16,
    **options: Any,
) -> tuple[FeedResult, list[FeedError]]:
    errors = Errors()
    result = await load_rdf_feed(
        pool,
        lambda: chunks_of(data, chunk),
        uri=uri,
        options=LoadOptions(format=format, **options),
        errors=errors,
        cancelled=not_cancelled,
    )
    return result, errors.items


async def all_quads(pool: asyncpg.Pool) -> set[tuple[str, str, str, str]]:
    return {tuple(r) for r in await pool.fetch("SELECT s, p, o, g FROM quads")}


async def count(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return await rdf_store.count_quads(conn)


async def about(pool: asyncpg.Pool, subject: str, graph: str | None = None) -> list[dict[str, str]]:
    async with pool.acquire() as conn:
        return await rdf_store.triples_by_subject(conn, subject, graph)


# --------------------------------------------------------------------------- W3C conformance


def test_the_w3c_suites_are_all_here() -> None:
    counts = {suite: len(w3c_index(suite)) for suite in SUITES}
    assert counts == {"rdf-n-triples": 70, "rdf-n-quads": 87, "rdf-turtle": 313, "rdf-xml": 166}


@pytest.mark.parametrize(("suite", "case"), w3c_cases())
async def test_w3c(store: asyncpg.Pool, suite: str, case: dict[str, Any]) -> None:
    uri = f"s3://w3c-rdf-tests/{suite}/{case['action']}"
    data = (W3C / suite / case["action"]).read_bytes()
    result, errors = await load(
        store, data, SUITES[suite], uri=uri, base_uri=W3C_BASE + f"{suite}/{case['action']}"
    )
    if "Negative" in case["type"]:
        assert [(e.code, e.file_name) for e in errors] == [("PARSING_ERROR", uri)]
        assert result.stopped_on_error
        assert result.counts.parsing_errors == 1
    else:
        assert errors == []
        assert not result.stopped_on_error
        if "expected_statements" in case:  # evaluation tests, and every N-Triples/N-Quads one
            expected = case["expected_statements"]
            assert await count(store) == expected
            assert result.counts.total_records - result.counts.total_duplicates == expected
        if "Eval" in case["type"]:  # the very statements of the expected result
            stored = "".join(f"{s} {p} {o} .\n" for s, p, o, _ in await all_quads(store))
            wanted = (W3C / suite / case["result"]).read_text(encoding="utf-8")
            assert canonical(stored) == canonical(wanted)


# --------------------------------------------------------------------------- graphs and bases


async def test_triples_go_to_the_default_named_graph(store: asyncpg.Pool) -> None:
    await load(store, b"<http://ex/s> <http://ex/p> <http://ex/o> .\n", "ntriples")
    assert await all_quads(store) == {
        ("<http://ex/s>", "<http://ex/p>", "<http://ex/o>", f"<{DEFAULT_NAMED_GRAPH}>")
    }


async def test_named_graph_uri_is_the_graph_of_triples_and_of_quads_without_one(
    store: asyncpg.Pool,
) -> None:
    graph = "http://ex/my-graph"
    await load(store, b'<http://ex/s> <http://ex/p> "x" .\n', "ntriples", named_graph_uri=graph)
    await load(
        store,
        b'<http://ex/s> <http://ex/p> "y" .\n<http://ex/s> <http://ex/p> "z" <http://ex/g2> .\n',
        "nquads",
        named_graph_uri=graph,
    )
    await load(store, b'@prefix e: <http://ex/> . e:s e:p "t" .', "turtle", named_graph_uri=graph)
    assert {(r["o"], r["g"]) for r in await about(store, "http://ex/s")} == {
        ('"x"', f"<{graph}>"),
        ('"y"', f"<{graph}>"),
        ('"z"', "<http://ex/g2>"),
        ('"t"', f"<{graph}>"),
    }
    assert [r["o"] for r in await about(store, "<http://ex/s>", graph="http://ex/g2")] == ['"z"']


async def test_base_uri_resolves_relative_iris_in_turtle_and_rdfxml(store: asyncpg.Pool) -> None:
    base = "http://base.example/dir/file"
    await load(store, b"<a> <#p> <../b> .", "turtle", base_uri=base)
    xml = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:e="http://ex/">
  <rdf:Description rdf:about="c"><e:q rdf:resource="d"/></rdf:Description>
</rdf:RDF>"""
    await load(store, xml, "rdfxml", base_uri=base)
    graph = f"<{DEFAULT_NAMED_GRAPH}>"
    assert await all_quads(store) == {
        ("<http://base.example/dir/a>", f"<{base}#p>", "<http://base.example/b>", graph),
        ("<http://base.example/dir/c>", "<http://ex/q>", "<http://base.example/dir/d>", graph),
    }


async def test_relative_iris_resolve_against_a_base_of_any_scheme(store: asyncpg.Pool) -> None:
    xml = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:e="http://ex/"
         xml:base="food://bla/persons/">
  <rdf:Description rdf:about="alice"><e:knows rdf:resource="../pets/rex"/></rdf:Description>
</rdf:RDF>"""
    result, errors = await load(store, xml, "rdfxml")
    assert errors == [] and result.counts.total_records == 1
    await load(store, b"<bob> <http://ex/knows> <#me> .", "turtle", base_uri="urn:x-ex:people/")
    await load(store, b"@base <tag:ex.org,2024:a/b> . <c> <http://ex/knows> <../d> .", "turtle")
    assert {(s, o) for s, _, o, _ in await all_quads(store)} == {
        ("<food://bla/persons/alice>", "<food://bla/pets/rex>"),
        ("<urn:x-ex:people/bob>", "<urn:x-ex:people/#me>"),
        ("<tag:ex.org,2024:a/c>", "<tag:d>"),  # RFC 3986: ".." takes "ex.org,2024:a"
    }


async def test_turtle_without_base_uri_uses_neptunes_default_base(store: asyncpg.Pool) -> None:
    await load(store, b"<a> <http://ex/p> <http://ex/o> .", "turtle")
    assert await about(store, "https://aws.amazon.com/neptune/a")


# --------------------------------------------------------------------------- terms


async def test_terms_round_trip_in_ntriples_syntax_without_normalization(
    store: asyncpg.Pool,
) -> None:
    # e + combining acute (NFD) must stay two code points; \u escapes are decoded; the lexical
    # form of a typed literal is kept; characters that must be escaped are.
    data = (
        '<http://ex/s> <http://ex/p> "cafe\\u0301" .\n'
        '<http://ex/s> <http://ex/p> "e\u0301t\u00e9"@FR-ca .\n'
        f'<http://ex/s> <http://ex/p> "01"^^<{XSD}integer> .\n'
        '<http://ex/s> <http://ex/p> "tab\\there \\"quoted\\" back\\\\slash\\nline\\u0000" .\n'
        "<http://ex/s> <http://ex/p> <http://ex/\\u00E9> .\n"
        "<http://ex/s> <http://ex/p> _:node .\n"
    ).encode()
    result, errors = await load(store, data, "ntriples")
    assert errors == [] and result.counts.total_records == 6
    rows = await about(store, "<http://ex/s>")
    objects = sorted(r["o"] for r in rows)
    bnode = next(o for o in objects if o.startswith("_:"))
    assert objects == sorted(
        [
            '"cafe\u0301"',
            '"e\u0301t\u00e9"@fr-ca',
            f'"01"^^<{XSD}integer>',
            '"tab\\there \\"quoted\\" back\\\\slash\\nline\\u0000"',
            "<http://ex/\u00e9>",
            bnode,
        ]
    )
    assert bnode.endswith("node")
    # What a read returns is N-Triples that loads back as the same terms.
    copy = "".join(f"{r['s']} {r['p']} {r['o']} <http://ex/copy> .\n" for r in rows)
    again, errors = await load(store, copy.encode(), "nquads")
    assert errors == [] and again.counts.total_records == 6
    copied = await about(store, "<http://ex/s>", graph="http://ex/copy")
    # (a blank node read back and loaded again is a new node: it is another feed)
    copied_objects = sorted(r["o"] for r in copied if not r["o"].startswith("_:"))
    assert copied_objects == sorted(set(objects) - {bnode})


async def test_turtle_and_rdfxml_literals_keep_their_lexical_form(store: asyncpg.Pool) -> None:
    turtle = (
        f'<http://ex/s> <http://ex/p> "01"^^<{XSD}integer>,'
        f' "2020-01-01T00:00:00Z"^^<{XSD}dateTime>, "x"^^<{XSD}string>, "no"^^<{XSD}int> .'
    )
    await load(store, turtle.encode(), "turtle")
    xml = f"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:e="http://ex/">
  <rdf:Description rdf:about="http://ex/s">
    <e:p rdf:datatype="{XSD}decimal">1.50</e:p><e:p xml:lang="EN-gb">colour</e:p>
  </rdf:Description>
</rdf:RDF>"""
    await load(store, xml.encode(), "rdfxml")
    assert sorted(r["o"] for r in await about(store, "http://ex/s")) == [
        f'"01"^^<{XSD}integer>',
        f'"1.50"^^<{XSD}decimal>',
        f'"2020-01-01T00:00:00Z"^^<{XSD}dateTime>',
        '"colour"@en-gb',
        f'"no"^^<{XSD}int>',
        '"x"',
    ]


async def test_reads_limit_and_filter_by_graph(store: asyncpg.Pool) -> None:
    lines = "".join(
        f'<http://ex/s> <http://ex/p> "{i}" <http://ex/g{i % 2}> .\n' for i in range(10)
    )
    await load(store, lines.encode(), "nquads")
    async with store.acquire() as conn:
        assert len(await rdf_store.triples_by_subject(conn, "http://ex/s", limit=3)) == 3
        in_g1 = await rdf_store.triples_by_subject(conn, "http://ex/s", graph="<http://ex/g1>")
        assert [r["o"] for r in in_g1] == ['"1"', '"3"', '"5"', '"7"', '"9"']
        assert await rdf_store.triples_by_subject(conn, "http://ex/nothing") == []
        assert await rdf_store.count_quads(conn) == 10


# --------------------------------------------------------------------------- counters


async def test_duplicates_are_counted_within_a_feed_and_against_the_store(
    store: asyncpg.Pool,
) -> None:
    data = (
        b'<http://ex/s> <http://ex/p> "a" .\n'
        b'<http://ex/s> <http://ex/p> "a" .\n'
        b'<http://ex/s> <http://ex/p> "a"^^<http://www.w3.org/2001/XMLSchema#string> .\n'
        b'<http://ex/s> <http://ex/p> "b"@EN .\n'
        b'<http://ex/s> <http://ex/p> "b"@en .\n'
    )
    first, _ = await load(store, data, "ntriples")
    assert (first.counts.total_records, first.counts.total_duplicates) == (5, 3)
    again, _ = await load(store, data, "ntriples")
    assert (again.counts.total_records, again.counts.total_duplicates) == (5, 5)
    turtle, _ = await load(store, b'<http://ex/s> <http://ex/p> "a", "a", "c" .', "turtle")
    assert (turtle.counts.total_records, turtle.counts.total_duplicates) == (3, 2)
    assert await count(store) == 3


async def test_parallel_feeds_with_the_same_statements_count_each_once(
    store: asyncpg.Pool,
) -> None:
    # The same statements in each batch, in opposite orders: without a common lock order the
    # two feeds' inserts would deadlock.
    lines = [f"<http://ex/s{i}> <http://ex/p> <http://ex/o> .\n" for i in range(BATCH_LINES * 2)]
    forward = "".join(lines).encode()
    backward = "".join(lines[BATCH_LINES - 1 :: -1] + lines[: BATCH_LINES - 1 : -1]).encode()
    results = await asyncio.gather(
        load(store, forward, "ntriples", uri="s3://b/forward.nt"),
        load(store, backward, "ntriples", uri="s3://b/backward.nt"),
    )
    new = sum(r.counts.total_records - r.counts.total_duplicates for r, _ in results)
    assert new == len(lines) == await count(store)


async def test_a_statement_longer_than_a_btree_entry_is_stored_once(store: asyncpg.Pool) -> None:
    data = f'<http://ex/s> <http://ex/p> "{"x" * 100_000}" .\n'.encode() * 2
    result, errors = await load(store, data, "ntriples")
    assert errors == []
    assert (result.counts.total_records, result.counts.total_duplicates) == (2, 1)


# --------------------------------------------------------------------------- blank nodes


async def test_blank_nodes_are_scoped_to_their_feed(store: asyncpg.Pool) -> None:
    data = b'_:x <http://ex/p> "1" .\n_:x <http://ex/q> "2" .\n'
    await load(store, data, "ntriples", uri="s3://bucket/one.nt")
    await load(store, data, "ntriples", uri="s3://bucket/two.nt")
    await load(store, b'_:x <http://ex/p> "1" .', "turtle")
    subjects = await store.fetch("SELECT s, count(*) AS n FROM quads GROUP BY s")
    assert sorted(r["n"] for r in subjects) == [1, 2, 2]  # same label, same feed: one node
    for row in subjects:
        assert row["s"].startswith("_:")
        assert len(await about(store, row["s"])) == row["n"]  # reads take the stored label


async def test_blank_node_graph_labels_in_nquads(store: asyncpg.Pool) -> None:
    await load(store, b'<http://ex/s> <http://ex/p> "1" _:g .\n', "nquads")
    ((g,),) = await store.fetch("SELECT g FROM quads")
    assert g.startswith("_:")


# --------------------------------------------------------------------------- errors


BAD_THIRD_LINE = (
    b"<http://ex/s> <http://ex/p> <http://ex/o1> .\n"
    b"<http://ex/s> <http://ex/p> <http://ex/o2> .\n"
    b"<http://ex/s> <http://ex/p> | .\n"
    b"<http://ex/s> <http://ex/p> <http://ex/o4> .\n"
    b"<http://ex/s> <http://ex/p> <http://ex/o5> .\n"
)


async def test_fail_on_error_stops_at_the_bad_line_and_keeps_what_came_before(
    store: asyncpg.Pool,
) -> None:
    result, errors = await load(store, BAD_THIRD_LINE, "ntriples", uri="s3://b/k.nt")
    assert result.stopped_on_error
    assert (result.counts.total_records, result.counts.parsing_errors) == (2, 1)
    assert [(e.code, e.file_name, e.record_num) for e in errors] == [
        ("PARSING_ERROR", "s3://b/k.nt", 3)
    ]
    assert "|" in errors[0].message
    assert await count(store) == 2


async def test_without_fail_on_error_bad_lines_are_counted_and_the_rest_loads(
    store: asyncpg.Pool,
) -> None:
    data = BAD_THIRD_LINE + b'<http://ex/s> <http://ex/p> "unterminated .\n'
    result, errors = await load(store, data, "ntriples", fail_on_error=False)
    assert not result.stopped_on_error
    assert (result.counts.total_records, result.counts.parsing_errors) == (4, 2)
    assert [e.record_num for e in errors] == [3, 6]
    assert await count(store) == 4


async def test_errors_name_the_line_across_batches(store: asyncpg.Pool) -> None:
    good = b"<http://ex/s> <http://ex/p> <http://ex/o> .\n"
    data = good * (BATCH_LINES + 5) + b"not a statement\n" + good
    result, errors = await load(store, data, "nquads", chunk=1000, fail_on_error=False)
    assert [e.record_num for e in errors] == [BATCH_LINES + 6]
    assert (result.counts.total_records, result.counts.total_duplicates) == (
        BATCH_LINES + 6,
        BATCH_LINES + 5,
    )


async def test_an_overlong_line_is_a_parsing_error_and_is_not_buffered(
    store: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "_current", InputLimits(max_record_bytes=100))
    data = (
        b'<http://ex/s> <http://ex/p> "1" .\n'
        + b'<http://ex/s> <http://ex/p> "'
        + b"x" * 200
        + b'" .\n'
        + b'<http://ex/s> <http://ex/p> "3" .'  # no final newline
    )
    result, errors = await load(store, data, "ntriples", chunk=16, fail_on_error=False)
    assert [(e.record_num, "longer than 100 bytes" in e.message) for e in errors] == [(2, True)]
    assert result.counts.total_records == 2


async def test_each_bad_line_is_named_and_the_lines_around_it_load(store: asyncpg.Pool) -> None:
    # The missing dot of line 1 is only seen at line 2 by a parser reading on: the error
    # still names line 1, and line 2 loads. A lone CR ends a line as LF does.
    data = (
        b"<http://ex/s1> <http://ex/p> <http://ex/o>\n"
        b"<http://ex/s2> <http://ex/p> <http://ex/o> .\r"
        b'<http://ex/s3> <http://ex/p> "unclosed .\r\n'
        b"<http://ex/s4> <http://ex/p> <http://ex/o> .\n"
        b"<http://ex/s5> <http://ex/p> <relative> .\n"
        b"<http://ex/s6> <http://ex/p> <http://ex/o> .\n"
    )
    for fmt in ("ntriples", "nquads"):
        await store.execute("TRUNCATE quads")
        result, errors = await load(store, data, fmt, fail_on_error=False)
        assert [e.record_num for e in errors] == [1, 3, 5]
        assert all(e.code == "PARSING_ERROR" and "found:" in e.message for e in errors)
        assert ("N-Triples" if fmt == "ntriples" else "N-Quads") in errors[0].message
        assert sorted(s for s, _, _, _ in await all_quads(store)) == [
            "<http://ex/s2>", "<http://ex/s4>", "<http://ex/s6>"
        ]  # fmt: skip
        assert result.counts.parsing_errors == 3


async def test_an_escaped_lone_surrogate_is_a_parsing_error_of_its_line(
    store: asyncpg.Pool,
) -> None:
    good = b"<http://ex/s> <http://ex/p> <http://ex/o> .\n"
    for fmt, bad in [
        ("ntriples", b"<http://ex/\\ud800> <http://ex/p> <http://ex/o> .\n"),
        ("nquads", b'<http://ex/s> <http://ex/p> "\\uDC00" .\n'),
        ("turtle", b"<http://ex/s> <http://ex/p> <\\ud800> .\n"),
    ]:
        _, errors = await load(store, good + bad + good, fmt, fail_on_error=False)
        assert [(e.code, e.record_num) for e in errors] == [("PARSING_ERROR", 2)], fmt
        assert not any(0xD800 <= ord(c) <= 0xDFFF or c == "\0" for c in errors[0].message)


async def test_a_graph_label_in_ntriples_is_a_parsing_error(store: asyncpg.Pool) -> None:
    _, errors = await load(
        store, b"<http://ex/s> <http://ex/p> <http://ex/o> <http://ex/g> .", "ntriples"
    )
    assert [(e.code, e.record_num) for e in errors] == [("PARSING_ERROR", 1)]


async def test_a_line_that_is_not_utf8_is_a_parsing_error(store: asyncpg.Pool) -> None:
    data = b'<http://ex/s> <http://ex/p> "ok" .\n<http://ex/s> <http://ex/p> "\xff" .\n'
    result, errors = await load(store, data, "ntriples", fail_on_error=False)
    assert [(e.record_num, "UTF-8" in e.message) for e in errors] == [(2, True)]
    assert result.counts.total_records == 1


async def test_turtle_and_rdfxml_syntax_errors_name_their_line(store: asyncpg.Pool) -> None:
    turtle = b'@prefix e: <http://ex/> .\ne:s e:p "a" .\ne:s e:p .\n'
    result, errors = await load(store, turtle, "turtle", uri="s3://b/x.ttl")
    assert [(e.code, e.file_name, e.record_num) for e in errors] == [
        ("PARSING_ERROR", "s3://b/x.ttl", 3)
    ]
    assert result.stopped_on_error and await count(store) == 1  # streamed: line 2 stays
    xml = b'<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n<a></b>\n'
    _, errors = await load(store, xml, "rdfxml", fail_on_error=False)
    assert [(e.code, e.record_num) for e in errors] == [("PARSING_ERROR", 3)]


async def test_a_turtle_syntax_error_ends_the_feed_even_without_fail_on_error(
    store: asyncpg.Pool,
) -> None:
    data = (
        b'<http://ex/s> <http://ex/p> "a" .\n'
        b'"literal as subject" <http://ex/p> "b" .\n'
        b'<http://ex/s> <http://ex/p> "c" .\n'
    )
    result, errors = await load(store, data, "turtle", fail_on_error=False)
    assert [(e.code, e.record_num) for e in errors] == [("PARSING_ERROR", 2)]
    assert (result.counts.total_records, result.counts.parsing_errors) == (1, 1)


async def test_statements_the_store_cannot_keep_are_skipped_without_fail_on_error(
    store: asyncpg.Pool,
) -> None:
    data = (
        b'<http://ex/s> <http://ex/p> "a" .\n'
        b"<http://ex/s> <http://ex/p> <<( <http://ex/a> <http://ex/b> <http://ex/c> )>> .\n"
        b'<http://ex/s> <http://ex/p> "c" .\n'
    )
    result, errors = await load(store, data, "turtle", fail_on_error=False)
    assert [(e.code, "triple term" in e.message) for e in errors] == [("PARSING_ERROR", True)]
    assert (result.counts.total_records, result.counts.parsing_errors) == (2, 1)


# --------------------------------------------------------------------------- streaming


async def test_gzip_feeds_load_through_decompression(store: asyncpg.Pool) -> None:
    lines = "".join(f'<http://ex/s{i}> <http://ex/p> "{i}" .\n' for i in range(5000))
    packed = gzip.compress(lines.encode())
    errors = Errors()
    result = await load_rdf_feed(
        store,
        lambda: decompressed("feeds/data.nt.gz", chunks_of(packed, 4096)),
        uri="s3://bucket/feeds/data.nt.gz",
        options=LoadOptions(format="ntriples"),
        errors=errors,
        cancelled=not_cancelled,
    )
    assert errors.items == [] and result.counts.total_records == 5000
    assert await count(store) == 5000


async def test_cancelled_stops_between_batches(store: asyncpg.Pool) -> None:
    lines = "".join(
        f"<http://ex/s{i}> <http://ex/p> <http://ex/o> .\n" for i in range(BATCH_LINES * 3)
    )
    data = lines.encode()

    async def after_first_batch() -> bool:
        return True

    result = await load_rdf_feed(
        store,
        lambda: chunks_of(data),
        uri="s3://bucket/big.nt",
        options=LoadOptions(format="ntriples"),
        errors=Errors(),
        cancelled=after_first_batch,
    )
    assert result.counts.total_records == BATCH_LINES
    assert await count(store) == BATCH_LINES


async def generated_ntriples(lines: int, per_chunk: int = 2000) -> AsyncIterator[bytes]:
    """A large N-Triples file, made as it is read (so the test holds no copy of it)."""
    for start in range(0, lines, per_chunk):
        yield "".join(
            f'<http://example.org/item/{i}> <http://example.org/p{i % 7}> "value {i}"@en .\n'
            for i in range(start, min(lines, start + per_chunk))
        ).encode()


async def test_a_large_ntriples_file_loads_with_bounded_memory(store: asyncpg.Pool) -> None:
    lines = 200_000  # about 16 MB of N-Triples, 200k statements
    tracemalloc.start()
    try:
        started = time.perf_counter()
        result = await load_rdf_feed(
            store,
            lambda: generated_ntriples(lines),
            uri="s3://bucket/large.nt",
            options=LoadOptions(format="ntriples"),
            errors=Errors(),
            cancelled=not_cancelled,
        )
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.counts.total_records == lines
    assert await count(store) == lines
    # Two batches of parsed statements at most (one parsing, one writing): holding the whole
    # feed's statements would take well over 100 MB.
    assert peak < 24 << 20, f"peak {peak / 2**20:.1f} MiB"
    print(f"{lines} statements in {elapsed:.1f} s (under tracemalloc), peak {peak / 2**20:.1f} MiB")


async def generated_turtle(statements: int, per_chunk: int = 2000) -> AsyncIterator[bytes]:
    yield b"@prefix ex: <http://example.org/> .\n"
    for start in range(0, statements, per_chunk):
        yield "".join(
            f'ex:item{i} ex:p{i % 7} "value {i}"@en ; ex:n {i} .\n'
            for i in range(start, min(statements, start + per_chunk))
        ).encode()


async def generated_rdfxml(statements: int, per_chunk: int = 2000) -> AsyncIterator[bytes]:
    yield (
        b'<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        b' xmlns:ex="http://example.org/">\n'
    )
    for start in range(0, statements, per_chunk):
        yield "".join(
            f'<rdf:Description rdf:about="http://example.org/item{i}">'
            f'<ex:p{i % 7} xml:lang="en">value {i}</ex:p{i % 7}><ex:n>{i}</ex:n>'
            "</rdf:Description>\n"
            for i in range(start, min(statements, start + per_chunk))
        ).encode()
    yield b"</rdf:RDF>\n"


@pytest.mark.parametrize(
    ("fmt", "generated"), [("turtle", generated_turtle), ("rdfxml", generated_rdfxml)]
)
async def test_a_large_document_streams_with_bounded_memory(
    store: asyncpg.Pool, fmt: Format, generated: Any
) -> None:
    subjects = 100_000  # about 6 MB of Turtle or 11 MB of RDF/XML, 200k statements
    tracemalloc.start()
    try:
        started = time.perf_counter()
        result = await load_rdf_feed(
            store,
            lambda: generated(subjects),
            uri=f"s3://bucket/large.{fmt}",
            options=LoadOptions(format=fmt),
            errors=Errors(),
            cancelled=not_cancelled,
        )
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.counts.total_records == 2 * subjects
    assert await count(store) == 2 * subjects
    # Parsed whole, the statements alone would take well over 100 MB.
    assert peak < 24 << 20, f"peak {peak / 2**20:.1f} MiB"
    print(f"{fmt}: {2 * subjects} statements in {elapsed:.1f} s, peak {peak / 2**20:.1f} MiB")
