"""The property-graph store: every SQL statement of the graph (tables in 0003_graph_store.sql).

A feed batch goes through here in one transaction: :func:`stage_copy` streams the batch's raw
CSV bytes into a session TEMP table of text columns (``rec`` is an identity column, so COPY
numbers the records in file order), then :func:`merge_vertices` or :func:`merge_edges` type-check
and merge it with set-based SQL. Python never sees a row unless COPY rejects the bytes (see
graph_csv.py, which then parses the batch itself and hands the good records to
:func:`stage_records`).

Edges, the bulk of a graph, take the cheapest path that is still exact: one INSERT of the rows
without a problem, with no ON CONFLICT (it doubles the insert's cost) so that an id already
taken raises and rolls the attempt back. Rows left out because of their own errors are logged
and, if they only lose a bad value, added (when ``fail_on_error`` is off). Ids seen before
(loaded earlier, or twice in the batch) and errors to stop at go through the full checks, where
window functions and sorts are kept to the ids that repeat. Vertices always take the full
checks (labels and set-valued properties are ON CONFLICT DO NOTHING inserts, duplicates are
attempted minus inserted).

Cost (1M edges, 2 properties, 2-core machine, PostgreSQL 16): about 7 s, 10% of a raw COPY of
the file into a plain table. Most of it is the INSERT itself: a COPY of the same file into a
table with only a text primary key on the id already takes 3-4x the plain COPY, and typed jsonb
properties, endpoint checks and staging add the rest.

Rules applied here (the parser turns headers into a :class:`VertexPlan` / :class:`EdgePlan`):

- Every field is trimmed of spaces (the format ignores spaces around delimiters; after COPY a
  quoted field's edge spaces cannot be told apart, so they go too). A blank field is no value;
  ``""`` is an empty string for String-like types when ``allowEmptyStrings`` is set and no
  value otherwise (the load page's rule; the format page calls it a value, which we read as
  the allowEmptyStrings case). An empty id (``""``) is a valid id, a blank one is an error.
- Types: Bool is true when the text is ``true`` in any case, false otherwise; Byte, Short,
  Int, Long are decimal integers in range (no hex, no ``_``); Float and Double are decimal or
  scientific numbers, ``NaN`` or ``[+-]Infinity`` as Java writes them (``inf`` and values out
  of the type's range are errors); dates are ``yyyy-MM-dd`` optionally followed by
  ``THH:mm``, ``:ss``, a fraction and ``Z`` or an offset (a value without a zone is UTC),
  stored as epoch milliseconds. Arrays split on ``;`` not preceded by ``\\`` and unescape
  ``\\;``; empty elements are dropped.
- Records (Neptune's counting): a vertex row is one record per label and per property value, an
  edge row one record for the edge and one per property value. A row that cannot be loaded at
  all (blank id, missing endpoint, malformed CSV) counts as one record. A record that changes
  nothing already loaded is a duplicate.
- Errors: a bad value loses that value only (``datatypeMismatchErrors``); a bad row loses the
  row. With ``fail_on_error`` the batch keeps only the rows before the first error (by record
  number), reports the errors of that record, counts it as one attempted record, and stops.
- Single cardinality (Gremlin ``(single)`` vertex properties and all edge properties): a value
  that differs from the one already there (loaded before, or earlier in the feed) is a
  SINGLE_CARDINALITY_VIOLATION; with ``updateSingleCardinalityProperties`` the last value in
  record order replaces it. openCypher (policy ``keep``) keeps the first value silently and
  counts the others as duplicates, as Neptune never updates openCypher properties.
- An edge id already used with another label or other endpoints is ID_ASSIGNED_TO_MULTIPLE_EDGES
  (both formats: reusing an id for another relationship is a data error, not a duplicate).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

from loadbay_loader.feeds import ErrorCode, FeedCounts
from loadbay_platform.db import watched

Policy = Literal["error", "replace", "keep"]

VERTEX_LABEL = "vertex"  # the label of a vertex written without one (TinkerPop's default)
EDGE_LABEL = "edge"
MAX_KEY_BYTES = 1024  # ids and labels are index keys: longer ones are parse errors
MAX_ERRORS_PER_BATCH = 10_000  # error details fetched per batch (the engine keeps 10,000)
_NO_LIMIT = 2**62

INTEGER_TYPES = {"Byte": (-128, 127), "Short": (-32768, 32767), "Int": (-(2**31), 2**31 - 1)}
FLOAT_TYPES = {"Float": "float4", "Double": "float8"}
DATE_TYPES = ("Date", "DateTime")  # stored as epoch milliseconds
AUTO_CAST_TYPES = ("Char", "Date", "LocalDate", "LocalDateTime", "Duration", "Point")  # openCypher
STRING_TYPES = ("String", "Char", "LocalDate", "LocalDateTime", "Duration", "Point")

_DATE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$"
)
_ZONED = r"T.*(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_ARRAY_SPLIT = r"(?<!\\);"


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class PropertyColumn:
    """One property column of a feed: where it is, what it is called and typed."""

    field: int  # 0-based position in the CSV record
    header: str  # the header token as written, for messages
    name: str
    type: str  # canonical: Bool Byte Short Int Long Float Double String Date DateTime Char ...
    array: bool = False
    single: bool = False  # single cardinality (always, for edges and openCypher)
    date_epoch: bool = True  # Date holds epoch ms (Gremlin); False: openCypher's auto-cast Date


@dataclass(frozen=True)
class VertexPlan:
    width: int
    id_field: int
    id_header: str
    id_space: str
    label_field: int | None
    label_header: str
    props: tuple[PropertyColumn, ...]
    label_required: bool  # Gremlin: a blank ~label is an error; openCypher: the default label
    id_property: str | None = None  # openCypher `name:ID`: the id is also this String property


@dataclass(frozen=True)
class EdgePlan:
    width: int
    id_field: int | None  # None: the loader generates ids (openCypher userProvidedEdgeIds=false)
    id_header: str
    from_field: int
    from_header: str
    from_space: str
    to_field: int
    to_header: str
    to_space: str
    label_field: int | None
    label_header: str
    props: tuple[PropertyColumn, ...]


@dataclass(frozen=True)
class MergeSettings:
    policy: Policy
    fail_on_error: bool
    allow_empty_strings: bool


@dataclass
class BatchOutcome:
    counts: FeedCounts = field(default_factory=FeedCounts)
    # (record number within the batch, code, message), in record order, at most
    # MAX_ERRORS_PER_BATCH of them (the counters count them all)
    errors: list[tuple[int, ErrorCode, str]] = field(default_factory=list)
    stopped: bool = False  # fail_on_error met an error: only the records before it loaded


# --------------------------------------------------------------------------- staging


@dataclass(frozen=True)
class Staging:
    """A session's TEMP tables for one feed: ``stage`` (rec + text columns c0..cN) and
    ``errs`` (the batch's errors); per-batch work tables are dropped at commit."""

    token: str
    width: int

    def table(self, what: str) -> str:
        return f"pg_temp.lb_{what}_{self.token}"

    @property
    def stage(self) -> str:
        return self.table("stage")

    @property
    def errs(self) -> str:
        return self.table("errs")

    @property
    def columns(self) -> list[str]:
        return [f"c{i}" for i in range(self.width)]


async def create_staging(conn: asyncpg.Connection, width: int) -> Staging:
    """Create the feed's TEMP tables on ``conn`` (drop them with :func:`drop_staging`)."""
    st = Staging(secrets.token_hex(8), width)
    # "C" like the store's keys, so staged ids compare with them without a collation clash
    cols = ", ".join(f'{c} text COLLATE "C"' for c in st.columns)
    await conn.execute(
        f"CREATE TEMP TABLE lb_stage_{st.token} ("
        f" rec bigint GENERATED BY DEFAULT AS IDENTITY (CACHE 10000), {cols});"
        f" CREATE TEMP TABLE lb_errs_{st.token} ("
        " rec bigint NOT NULL, code text NOT NULL, kind text NOT NULL,"
        " fatal boolean NOT NULL, message text NOT NULL)"
    )
    return st


async def drop_staging(conn: asyncpg.Connection, st: Staging) -> None:
    await conn.execute(f"DROP TABLE IF EXISTS {st.stage}, {st.errs}")


async def _reset(conn: asyncpg.Connection, st: Staging) -> None:
    await conn.execute(f"TRUNCATE {st.stage}, {st.errs} RESTART IDENTITY")


async def stage_copy(conn: asyncpg.Connection, st: Staging, source: AsyncIterable[bytes]) -> int:
    """Empty the staging tables and COPY one batch of raw CSV records (no header) into them.

    Returns the number of records. Raises asyncpg's data errors (BadCopyFileFormatError,
    CharacterNotInRepertoireError...) when PostgreSQL rejects the bytes; the caller's
    transaction is then aborted.
    """
    await _reset(conn, st)
    status: str = await watched(
        conn,
        conn.copy_to_table(
            _bare(st.stage),
            schema_name="pg_temp",
            source=source,
            columns=st.columns,
            format="csv",
            encoding="UTF8",
        ),
    )
    # Without statistics the planner takes a freshly filled TEMP table for a few rows and
    # joins it in nested loops (40 s instead of 1 s for 500k edges); sampling costs ~2%.
    await conn.execute(f"ANALYZE {st.stage}")
    return int(status.rsplit(" ", 1)[-1])


async def stage_records(
    conn: asyncpg.Connection,
    st: Staging,
    records: Iterable[tuple[Any, ...]],
    parse_errors: Sequence[tuple[int, str]],
) -> None:
    """The slow path's staging: records parsed in Python as (rec, field0, ...) tuples, and
    the records that could not be parsed, as (rec, message) PARSING_ERRORs."""
    await _reset(conn, st)
    await watched(
        conn,
        conn.copy_records_to_table(
            _bare(st.stage),
            schema_name="pg_temp",
            records=records,
            columns=["rec", *st.columns],
        ),
    )
    await conn.execute(f"ANALYZE {st.stage}")
    if parse_errors:
        await conn.executemany(
            f"INSERT INTO {st.errs} (rec, code, kind, fatal, message)"
            " VALUES ($1, 'PARSING_ERROR', 'parse', true, $2)",
            parse_errors,
        )


# --------------------------------------------------------------------------- SQL pieces


class _Args:
    """Collects query parameters and hands out their ``$n`` placeholders."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, cast: str = "text") -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


def _trimmed(st: Staging) -> str:
    """The staging table with every field trimmed, as relation ``s`` (rec, t0, t1, ...)."""
    cols = ", ".join(f"btrim({c}) AS t{i}" for i, c in enumerate(st.columns))
    return f"(SELECT rec, {cols} FROM {st.stage} OFFSET 0) s"


def _is_string(col: PropertyColumn) -> bool:
    return col.type in STRING_TYPES or (col.type == "Date" and not col.date_epoch)


def _present(col: PropertyColumn, settings: MergeSettings) -> str:
    t = f"s.t{col.field}"
    if settings.allow_empty_strings and _is_string(col):
        return f"({t} IS NOT NULL)"
    return f"({t} IS NOT NULL AND {t} <> '')"


def _valid(col: PropertyColumn, x: str) -> str:
    """SQL: the (trimmed, non-null) text ``x`` is a valid value of the column's type.

    PostgreSQL's input functions do the parsing (``pg_input_is_valid`` reports without an
    exception); what they accept beyond Java's syntax is ruled out with cheap character tests
    rather than a regex (about 3x slower per value): integers in PostgreSQL 16 also take
    ``_`` separators and 0x/0o/0b prefixes, floats take ``inf``, any-case ``nan`` and hex.
    """
    if col.type in INTEGER_TYPES or col.type == "Long":
        plain = " AND ".join(f"strpos({x}, '{ch}') = 0" for ch in "_xXoObB")
        check = f"pg_input_is_valid({x}, 'int8') AND {plain}"
        if col.type != "Long":
            lo, hi = INTEGER_TYPES[col.type]
            return f"CASE WHEN {check} THEN {x}::int8 BETWEEN {lo} AND {hi} ELSE false END"
        return f"CASE WHEN {check} THEN true ELSE false END"
    if col.type in FLOAT_TYPES:
        plain = " AND ".join(f"strpos({x}, '{ch}') = 0" for ch in "nNxX")
        return (
            f"CASE WHEN {plain} THEN pg_input_is_valid({x}, '{FLOAT_TYPES[col.type]}')"
            f" ELSE {x} IN ('NaN', '+NaN', '-NaN', 'Infinity', '+Infinity', '-Infinity') END"
        )
    if col.type in DATE_TYPES and col.date_epoch:
        return (
            f"CASE WHEN {x} ~ '{_DATE}'"
            f" THEN pg_input_is_valid({_zoned(x)}, 'timestamptz') ELSE false END"
        )
    return "true"  # Bool (anything not "true" is false), String, openCypher auto-cast types


def _zoned(x: str) -> str:
    return f"(CASE WHEN {x} ~ '{_ZONED}' THEN {x} ELSE {x} || 'Z' END)"


def _value(col: PropertyColumn, x: str) -> str:
    """SQL: the jsonb value of the valid text ``x``."""
    if col.type == "Bool":
        return f"to_jsonb(lower({x}) = 'true')"
    if col.type in INTEGER_TYPES or col.type == "Long":
        return f"to_jsonb({x}::int8)"
    if col.type in FLOAT_TYPES:
        return f"to_jsonb({x}::{FLOAT_TYPES[col.type]})"
    if col.type in DATE_TYPES and col.date_epoch:
        return f"to_jsonb((extract(epoch FROM {_zoned(x)}::timestamptz) * 1000)::int8)"
    return f"to_jsonb({x})"


def _checked_value(col: PropertyColumn, x: str) -> str:
    valid = _valid(col, x)
    value = _value(col, x)
    return value if valid == "true" else f"CASE WHEN {valid} THEN {value} END"


def _mismatch_message(col: PropertyColumn, a: _Args, x: str) -> str:
    return f"format('%s: \"%s\" is not a valid %s', {a(col.header)}, left({x}, 100), {a(col.type)})"


def _split(x: str) -> str:
    """SQL set: the elements of the array cell ``x`` (unescaped, trimmed, non-empty)."""
    return (
        f"(SELECT btrim(replace(e, '\\;', ';')) AS t"
        f" FROM regexp_split_to_table({x}, '{_ARRAY_SPLIT}') AS e"
        f" WHERE btrim(replace(e, '\\;', ';')) <> '')"
    )


VALUE_GROUP = 50  # property columns per statement that builds a batch's values


def _props_object(pairs: Sequence[tuple[str, str]], present: Sequence[str]) -> str:
    """SQL: the jsonb object of the present ones of (key, value) pairs. Stripping nulls costs
    half as much again as building the object, so it only runs when a value is missing."""
    if not pairs:
        return "'{}'::jsonb"
    full = _build_object([f"{k}, {v}" for k, v in pairs])
    some = _build_object(
        [f"{k}, CASE WHEN {p} THEN {v} END" for (k, v), p in zip(pairs, present, strict=True)]
    )
    return f"CASE WHEN {' AND '.join(present)} THEN {full} ELSE jsonb_strip_nulls({some}) END"


def _build_object(pairs: Sequence[str]) -> str:
    """SQL: jsonb_build_object of the ("key, value") pairs, in calls of at most 50 pairs
    joined with || (a PostgreSQL function takes at most 100 arguments)."""
    calls = [", ".join(pairs[i : i + 50]) for i in range(0, len(pairs), 50)]
    return " || ".join(f"jsonb_build_object({call})" for call in calls)


def _types_json(props: Sequence[PropertyColumn]) -> str:
    return json.dumps({c.name: c.type for c in props})


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def _limit(conn: asyncpg.Connection, st: Staging, settings: MergeSettings) -> int | None:
    """The first record with an error, when fail_on_error stops there."""
    if not settings.fail_on_error:
        return None
    first: int | None = await conn.fetchval(f"SELECT min(rec) FROM {st.errs}")
    return first


async def _report(
    conn: asyncpg.Connection, st: Staging, limit: int | None, outcome: BatchOutcome
) -> None:
    """Count the batch's errors (at the stopping record only, under fail_on_error) and fetch
    the first MAX_ERRORS_PER_BATCH of them."""
    where = "true" if limit is None else f"rec = {int(limit)}"
    counts = await conn.fetch(
        f"SELECT kind, count(*) AS n FROM {st.errs} WHERE {where} GROUP BY kind"
    )
    for row in counts:
        if row["kind"] == "parse":
            outcome.counts.parsing_errors += row["n"]
        elif row["kind"] == "datatype":
            outcome.counts.datatype_mismatch_errors += row["n"]
        else:
            outcome.counts.insert_errors += row["n"]
    rows = await conn.fetch(
        f"SELECT rec, code, message FROM {st.errs} WHERE {where}"
        f" ORDER BY rec, code LIMIT {MAX_ERRORS_PER_BATCH}"
    )
    outcome.errors = [(r["rec"], r["code"], r["message"]) for r in rows]
    outcome.stopped = limit is not None


_ANALYZE_TABLES = ("graph_vertices", "graph_edges")


async def _analyze_if_grown(conn: asyncpg.Connection, table: str, added: int) -> None:
    """ANALYZE ``table`` when this batch grew it by a tenth or more. Edge batches join the
    vertices by id: planned on a never-analyzed table (taken for a handful of rows) that
    join becomes a nested loop costing minutes; autovacuum may not have run by then."""
    assert table in _ANALYZE_TABLES
    if added <= 0:
        return
    known: float = await conn.fetchval(
        "SELECT reltuples FROM pg_class WHERE oid = $1::regclass", table
    )
    if known < 0 or added >= known / 10:
        await conn.execute(f"ANALYZE {table}")


async def _fatal_rows(conn: asyncpg.Connection, st: Staging, limit: int) -> int:
    n: int = await conn.fetchval(
        f"SELECT count(DISTINCT rec) FROM {st.errs} WHERE fatal AND rec < $1", limit
    )
    return n


# --------------------------------------------------------------------------- vertices


async def merge_vertices(
    conn: asyncpg.Connection, st: Staging, plan: VertexPlan, settings: MergeSettings
) -> BatchOutcome:
    """Check and merge the staged vertex records (inside the caller's transaction)."""
    rows, vals, single = st.table("vrows"), st.table("vvals"), st.table("vsingle")
    space = plan.id_space
    a = _Args()
    if plan.label_field is None:
        labels = f"ARRAY[{a(VERTEX_LABEL)}]"
    else:
        labels = f"ARRAY(SELECT t FROM {_split(f's.t{plan.label_field}')} AS l)"
        if not plan.label_required:
            labels = (
                f"(SELECT CASE WHEN cardinality(x) = 0 THEN ARRAY[{a(VERTEX_LABEL)}] ELSE x END"
                f" FROM (SELECT {labels} AS x) y)"
            )
    await conn.execute(
        f"CREATE TEMP TABLE {_bare(rows)} ON COMMIT DROP AS"
        f" SELECT s.rec, s.t{plan.id_field} AS id, {labels} AS labels FROM {_trimmed(st)}",
        *a.values,
    )
    a = _Args()
    await conn.execute(
        f"""INSERT INTO {st.errs} (rec, code, kind, fatal, message)
        SELECT v.rec, 'PARSING_ERROR', 'parse', true, CASE
            WHEN v.id IS NULL THEN format('blank %s: every vertex needs an id', {a(plan.id_header)})
            WHEN octet_length(v.id) > {MAX_KEY_BYTES}
                THEN format('%s is longer than {MAX_KEY_BYTES} bytes', {a(plan.id_header)})
            WHEN cardinality(v.labels) = 0
                THEN format('blank %s: a vertex needs a label (or leave the column out)',
                            {a(plan.label_header)})
            ELSE 'a label is longer than {MAX_KEY_BYTES} bytes' END
        FROM {rows} v
        WHERE v.id IS NULL OR octet_length(v.id) > {MAX_KEY_BYTES} OR cardinality(v.labels) = 0
           OR (octet_length(array_to_string(v.labels, '')) > {MAX_KEY_BYTES}
               AND EXISTS (SELECT 1 FROM unnest(v.labels) l
                           WHERE octet_length(l) > {MAX_KEY_BYTES}))""",
        *a.values,
    )
    await conn.execute(f"DELETE FROM {rows} v USING {st.errs} e WHERE e.rec = v.rec AND e.fatal")
    # The properties' values, one row each; in groups of VALUE_GROUP columns per statement,
    # as each column adds about 14 to the query's target list (PostgreSQL's limit: 1,664).
    branches_made = False
    for start in range(0, max(len(plan.props), 1), VALUE_GROUP):
        a = _Args()
        branches = []
        for col in plan.props[start : start + VALUE_GROUP]:
            meta = (
                f"{a(col.name)} AS name, {a(col.type)} AS type, {col.single} AS single,"
                f" {a(col.header)} AS header"
            )
            if col.array:
                branches.append(
                    f"SELECT {meta}, e.t AS text, {_checked_value(col, 'e.t')} AS value"
                    f" FROM {_split(f's.t{col.field}')} AS e"
                )
            else:
                x = f"s.t{col.field}"
                branches.append(
                    f"SELECT {meta}, {x} AS text, {_checked_value(col, x)} AS value"
                    f" WHERE {_present(col, settings)}"
                )
        if plan.id_property is not None and start == 0:
            branches.append(
                f"SELECT {a(plan.id_property)} AS name, 'String' AS type, true AS single,"
                f" {a(plan.id_header)} AS header, v.id AS text, to_jsonb(v.id) AS value"
            )
        if not branches:
            continue
        into = (
            f"INSERT INTO {vals}"
            if branches_made
            else (f"CREATE TEMP TABLE {_bare(vals)} ON COMMIT DROP AS")
        )
        await conn.execute(
            f"{into} SELECT s.rec, v.id, x.* FROM {_trimmed(st)} JOIN {rows} v ON v.rec = s.rec"
            f" CROSS JOIN LATERAL ({' UNION ALL '.join(branches)}) AS x",
            *a.values,
        )
        branches_made = True
    if branches_made:
        await conn.execute(
            f"""INSERT INTO {st.errs} (rec, code, kind, fatal, message)
            SELECT rec, 'PARSING_ERROR', 'datatype', false,
                   format('%s: "%s" is not a valid %s', header, left(text, 100), type)
            FROM {vals} WHERE value IS NULL"""
        )
    has_single = any(c.single for c in plan.props) or plan.id_property is not None
    if has_single:
        await _classify_single_vertex_values(conn, st, vals, single, space, settings)

    limit = await _limit(conn, st, settings)
    lim = _NO_LIMIT if limit is None else limit
    outcome = BatchOutcome()
    c = outcome.counts

    new_vertices = _count(
        await conn.execute(
            f"INSERT INTO graph_vertices (id_space, id) SELECT $1, id FROM {rows} WHERE rec < $2"
            " ON CONFLICT DO NOTHING",
            space,
            lim,
        )
    )
    await _analyze_if_grown(conn, "graph_vertices", new_vertices)
    label_records = await conn.fetchval(
        f"SELECT coalesce(sum(cardinality(labels)), 0) FROM {rows} WHERE rec < $1", lim
    )
    inserted = _count(
        await conn.execute(
            f"INSERT INTO graph_vertex_labels (id_space, id, label)"
            f" SELECT $1, v.id, l FROM {rows} v, unnest(v.labels) AS l WHERE v.rec < $2"
            " ON CONFLICT DO NOTHING",
            space,
            lim,
        )
    )
    c.total_records += label_records
    c.total_duplicates += label_records - inserted
    if branches_made:
        value_records = await conn.fetchval(f"SELECT count(*) FROM {vals} WHERE rec < $1", lim)
        attempted = await conn.fetchval(
            f"SELECT count(*) FROM {vals} WHERE NOT single AND value IS NOT NULL AND rec < $1", lim
        )
        inserted = _count(
            await conn.execute(
                "INSERT INTO graph_vertex_properties (id_space, vertex_id, name, type, value)"
                f" SELECT $1, id, name, type, value FROM {vals}"
                " WHERE NOT single AND value IS NOT NULL AND rec < $2 ON CONFLICT DO NOTHING",
                space,
                lim,
            )
        )
        c.total_records += value_records
        c.total_duplicates += attempted - inserted
    if has_single:
        c.total_duplicates += await _merge_single_vertex_values(conn, single, space, settings, lim)
    c.total_records += await _fatal_rows(conn, st, lim) + (0 if limit is None else 1)
    await _report(conn, st, limit, outcome)
    return outcome


async def _classify_single_vertex_values(
    conn: asyncpg.Connection,
    st: Staging,
    vals: str,
    single: str,
    space: str,
    settings: MergeSettings,
) -> None:
    """Give every single-cardinality value a status against what is loaded and what came
    before it in the feed: new (to write), dup (changes nothing) or conflict."""
    if settings.policy == "replace":
        status = """CASE WHEN n = 1 THEN (CASE WHEN in_existing AND n_existing = 1
                                                THEN 'dup' ELSE 'new' END)
                         WHEN value = prev THEN 'dup' ELSE 'new' END"""
    else:
        status = """CASE WHEN n_existing > 0
                              THEN (CASE WHEN in_existing THEN 'dup' ELSE 'conflict' END)
                         WHEN n = 1 THEN 'new' WHEN value = first THEN 'dup' ELSE 'conflict' END"""
    await conn.execute(
        f"""CREATE TEMP TABLE {_bare(single)} ON COMMIT DROP AS
        SELECT x.rec, x.id, x.name, x.type, x.value, {status} AS status FROM (
            SELECT v.rec, v.id, v.name, v.type, v.value,
                   row_number() OVER w AS n, first_value(v.value) OVER w AS first,
                   lag(v.value) OVER w AS prev,
                   (SELECT count(*) FROM graph_vertex_properties p
                     WHERE p.id_space = $1 AND p.vertex_id = v.id AND p.name = v.name)
                     AS n_existing,
                   EXISTS (SELECT 1 FROM graph_vertex_properties p
                     WHERE p.id_space = $1 AND p.vertex_id = v.id AND p.name = v.name
                       AND p.value_key = md5(v.value::text)::uuid) AS in_existing
            FROM {vals} v WHERE v.single AND v.value IS NOT NULL
            WINDOW w AS (PARTITION BY v.id, v.name ORDER BY v.rec)) x""",
        space,
    )
    if settings.policy == "error":
        await conn.execute(
            f"""INSERT INTO {st.errs} (rec, code, kind, fatal, message)
            SELECT rec, 'SINGLE_CARDINALITY_VIOLATION', 'insert', false,
                   format('vertex "%s" already has another value for single-cardinality property'
                          ' "%s" (set updateSingleCardinalityProperties to replace it)', id, name)
            FROM {single} WHERE status = 'conflict'"""
        )


async def _merge_single_vertex_values(
    conn: asyncpg.Connection, single: str, space: str, settings: MergeSettings, lim: int
) -> int:
    """Write the single-cardinality values; returns their duplicates."""
    if settings.policy == "replace":
        await conn.execute(
            f"""WITH finals AS (
                SELECT DISTINCT ON (id, name) id, name, type, value FROM {single}
                WHERE rec < $2 ORDER BY id, name, rec DESC),
            gone AS (
                DELETE FROM graph_vertex_properties p USING finals f
                WHERE p.id_space = $1 AND p.vertex_id = f.id AND p.name = f.name
                  AND p.value_key <> md5(f.value::text)::uuid)
            INSERT INTO graph_vertex_properties (id_space, vertex_id, name, type, value)
            SELECT $1, id, name, type, value FROM finals ON CONFLICT DO NOTHING""",
            space,
            lim,
        )
    else:
        await conn.execute(
            "INSERT INTO graph_vertex_properties (id_space, vertex_id, name, type, value)"
            f" SELECT $1, id, name, type, value FROM {single} WHERE status = 'new' AND rec < $2"
            " ON CONFLICT DO NOTHING",
            space,
            lim,
        )
    dup_statuses = "('dup', 'conflict')" if settings.policy == "keep" else "('dup')"
    n: int = await conn.fetchval(
        f"SELECT count(*) FROM {single} WHERE status IN {dup_statuses} AND rec < $1", lim
    )
    return n


# --------------------------------------------------------------------------- edges


class _NotClean(Exception):
    """The optimistic edge insert met a row it cannot take as is: roll it back."""


def _edge_columns(plan: EdgePlan, a: _Args) -> dict[str, str]:
    """SQL expressions (over the trimmed staging relation ``s``) of an edge's fields."""
    return {
        "id": "gen_random_uuid()::text" if plan.id_field is None else f"s.t{plan.id_field}",
        "label": f"'{EDGE_LABEL}'::text" if plan.label_field is None else f"s.t{plan.label_field}",
        "from_id": f"s.t{plan.from_field}",
        "to_id": f"s.t{plan.to_field}",
    }


def _edge_props(plan: EdgePlan, settings: MergeSettings, a: _Args, *, checked: bool) -> str:
    """SQL: the jsonb properties of a staged edge (``checked``: invalid values left out)."""
    pairs, present = [], []
    for c in plan.props:
        x = f"s.t{c.field}"
        pairs.append((a(c.name), _value(c, x)))
        valid = _valid(c, x)
        checks = checked and valid != "true"
        present.append(
            f"({_present(c, settings)} AND {valid})" if checks else _present(c, settings)
        )
    return _props_object(pairs, present)


async def merge_edges(
    conn: asyncpg.Connection,
    st: Staging,
    plan: EdgePlan,
    settings: MergeSettings,
    *,
    rows: int,
    clean: bool,
) -> BatchOutcome:
    """Check and merge the staged edge records (inside the caller's transaction).

    ``rows`` is the number of staged records; ``clean`` says no parse errors were set aside
    for this batch. Then one INSERT of the rows without any problem is tried first (in a
    savepoint; it fails on an id already taken). If it took every row, the batch is done. If
    it left rows out and ``fail_on_error`` is off, the errors are logged and the rows that
    only lost a bad value are added. Otherwise (an id seen before, or an error to stop at) the
    savepoint is rolled back and the batch goes through :func:`_merge_edges_carefully`.
    """
    if clean and rows:
        try:
            async with conn.transaction():
                return await _insert_clean_edges(conn, st, plan, settings, rows)
        except (_NotClean, asyncpg.UniqueViolationError):
            pass
    # Another load may insert one of our ids between our check and our insert: go again.
    for attempt in range(2):
        try:
            async with conn.transaction():
                return await _merge_edges_carefully(conn, st, plan, settings)
        except asyncpg.UniqueViolationError:
            if attempt:
                raise
    raise AssertionError("unreachable")


async def _insert_clean_edges(
    conn: asyncpg.Connection, st: Staging, plan: EdgePlan, settings: MergeSettings, rows: int
) -> BatchOutcome:
    checks = [f"s.t{plan.from_field} IS NOT NULL", f"s.t{plan.to_field} IS NOT NULL"]
    if plan.id_field is not None:  # "" is a valid id, a blank (NULL) one is not
        checks.append(f"octet_length(s.t{plan.id_field}) <= {MAX_KEY_BYTES}")
    if plan.label_field is not None:
        checks.append(f"s.t{plan.label_field} <> ''")
        checks.append(f"octet_length(s.t{plan.label_field}) <= {MAX_KEY_BYTES}")
    for col in plan.props:
        valid = _valid(col, f"s.t{col.field}")
        if valid != "true":
            checks.append(f"(NOT {_present(col, settings)} OR {valid})")
    a = _Args()
    inserted = _count(
        await conn.execute(
            _insert_edges_sql(st, plan, settings, a, " AND ".join(checks)), *a.values
        )
    )
    outcome = BatchOutcome()
    if inserted != rows:
        if settings.fail_on_error:
            raise _NotClean
        # Some rows are not clean: log why, and add those that only lose a bad value.
        await _edge_row_errors(conn, st, plan, settings)
        a = _Args()
        only_values = f"s.rec IN (SELECT rec FROM {st.errs} GROUP BY rec HAVING NOT bool_or(fatal))"
        inserted += _count(
            await conn.execute(
                _insert_edges_sql(st, plan, settings, a, only_values, checked=True), *a.values
            )
        )
        fatal = await _fatal_rows(conn, st, _NO_LIMIT)
        if inserted + fatal != rows:
            raise _NotClean  # a row left out for a reason not logged: take the careful path
        await _report(conn, st, None, outcome)
    # records: one per row (a row that cannot load counts as one), plus its property values
    outcome.counts.total_records = rows
    if plan.props:
        present = " + ".join(f"count(*) FILTER (WHERE {_present(c, settings)})" for c in plan.props)
        outcome.counts.total_records += await conn.fetchval(
            f"SELECT {present} FROM {_trimmed(st)}"
            f" WHERE NOT EXISTS (SELECT 1 FROM {st.errs} x WHERE x.rec = s.rec AND x.fatal)"
        )
    return outcome


def _insert_edges_sql(
    st: Staging,
    plan: EdgePlan,
    settings: MergeSettings,
    a: _Args,
    where: str,
    *,
    checked: bool = False,
) -> str:
    """INSERT of the staged edges passing ``where`` whose endpoints exist (no ON CONFLICT:
    a taken id raises, which costs nothing until it happens, where ON CONFLICT doubles the
    cost of the insert)."""
    e = _edge_columns(plan, a)
    props = _edge_props(plan, settings, a, checked=checked)
    fs, ts, types = a(plan.from_space), a(plan.to_space), a(_types_json(plan.props), "jsonb")
    return f"""INSERT INTO graph_edges
            (id, label, from_space, from_id, to_space, to_id, properties, property_types)
        SELECT s.id, s.label, {fs}, s.from_id, {ts}, s.to_id, s.props, {types}
        FROM (SELECT {e["id"]} AS id, {e["label"]} AS label, {e["from_id"]} AS from_id,
                     {e["to_id"]} AS to_id, {props} AS props
              FROM {_trimmed(st)} WHERE {where} OFFSET 0) s
        JOIN graph_vertices vf ON vf.id_space = {fs} AND vf.id = s.from_id
        JOIN graph_vertices vt ON vt.id_space = {ts} AND vt.id = s.to_id"""


async def _edge_row_errors(
    conn: asyncpg.Connection, st: Staging, plan: EdgePlan, settings: MergeSettings
) -> None:
    """Log every staged row's own errors: blank or over-long id, endpoint or label (fatal),
    missing endpoint vertices (fatal) and values not of their column's type."""
    a = _Args()
    e = _edge_columns(plan, a)
    fs, ts = a(plan.from_space), a(plan.to_space)
    id_bad = (
        "false"
        if plan.id_field is None
        else f"{e['id']} IS NULL OR octet_length({e['id']}) > {MAX_KEY_BYTES}"
    )
    label_bad = (
        "false"
        if plan.label_field is None
        else f"{e['label']} IS NULL OR {e['label']} = ''"
        f" OR octet_length({e['label']}) > {MAX_KEY_BYTES}"
    )
    from_missing = f"({e['from_id']} IS NOT NULL AND vf.id IS NULL)"
    to_missing = f"({e['to_id']} IS NOT NULL AND vt.id IS NULL)"
    await conn.execute(
        f"""INSERT INTO {st.errs} (rec, code, kind, fatal, message)
        SELECT s.rec, x.code, x.kind, true, x.message
        FROM {_trimmed(st)}
        LEFT JOIN graph_vertices vf ON vf.id_space = {fs} AND vf.id = {e["from_id"]}
        LEFT JOIN graph_vertices vt ON vt.id_space = {ts} AND vt.id = {e["to_id"]}
        CROSS JOIN LATERAL (VALUES
            ({id_bad}, 'PARSING_ERROR', 'parse',
             format('blank or over-long %s: every edge needs an id of at most {MAX_KEY_BYTES}'
                    ' bytes', {a(plan.id_header)})),
            ({e["from_id"]} IS NULL, 'PARSING_ERROR', 'parse',
             format('blank %s', {a(plan.from_header)})),
            ({e["to_id"]} IS NULL, 'PARSING_ERROR', 'parse',
             format('blank %s', {a(plan.to_header)})),
            ({label_bad}, 'PARSING_ERROR', 'parse',
             format('blank or over-long %s: an edge needs one label', {a(plan.label_header)})),
            ({from_missing}, 'FROM_OR_TO_VERTEX_ARE_MISSING', 'insert',
             format('%s vertex "%s"%s does not exist (load vertex files before edge files)',
                    {a(plan.from_header)}, {e["from_id"]}, {a(_space_note(plan.from_space))})),
            ({to_missing}, 'FROM_OR_TO_VERTEX_ARE_MISSING', 'insert',
             format('%s vertex "%s"%s does not exist (load vertex files before edge files)',
                    {a(plan.to_header)}, {e["to_id"]}, {a(_space_note(plan.to_space))}))
        ) AS x(bad, code, kind, message)
        WHERE x.bad AND (({id_bad}) OR {e["from_id"]} IS NULL OR {e["to_id"]} IS NULL
                         OR ({label_bad}) OR {from_missing} OR {to_missing})""",
        *a.values,
    )
    a = _Args()
    mismatches = [
        f"SELECT s.rec, {_mismatch_message(c, a, f's.t{c.field}')} AS message FROM {_trimmed(st)}"
        f" WHERE {_present(c, settings)} AND NOT ({_valid(c, f's.t{c.field}')})"
        for c in plan.props
        if _valid(c, "x") != "true"
    ]
    if mismatches:
        await conn.execute(
            f"INSERT INTO {st.errs} (rec, code, kind, fatal, message)"
            f" SELECT rec, 'PARSING_ERROR', 'datatype', false, message"
            f" FROM ({' UNION ALL '.join(mismatches)}) m",
            *a.values,
        )


async def _merge_edges_carefully(
    conn: asyncpg.Connection, st: Staging, plan: EdgePlan, settings: MergeSettings
) -> BatchOutcome:
    """The full checks: row errors, ids seen before (loaded, or earlier in the batch), single
    cardinality, the fail_on_error limit; then the merge. Sorting is kept to the ids that
    occur more than once in the batch, usually none."""
    work, multi, props_t = st.table("ework"), st.table("emulti"), st.table("eprops")
    await _edge_row_errors(conn, st, plan, settings)
    a = _Args()
    e = _edge_columns(plan, a)
    props = _edge_props(plan, settings, a, checked=True)
    nvals = " + ".join(f"({_present(c, settings)})::int" for c in plan.props) or "0"
    if plan.id_field is None:  # generated ids: every row is a new edge
        existing = "false AS existed, NULL::jsonb AS g_props"
        join = ""
    else:
        existing = (
            "g.id IS NOT NULL AS existed, g.label AS g_label, g.from_space AS g_from_space,"
            " g.from_id AS g_from_id, g.to_space AS g_to_space, g.to_id AS g_to_id,"
            " g.properties AS g_props"
        )
        join = f"LEFT JOIN graph_edges g ON g.id = {e['id']}"
    await conn.execute(
        f"""CREATE TEMP TABLE {_bare(work)} ON COMMIT DROP AS
        SELECT s.rec, {e["id"]} AS id, {e["label"]} AS label, {e["from_id"]} AS from_id,
               {e["to_id"]} AS to_id, {props} AS props, {nvals} AS nvals, {existing}
        FROM {_trimmed(st)} {join}
        WHERE NOT EXISTS (SELECT 1 FROM {st.errs} x WHERE x.rec = s.rec AND x.fatal)""",
        *a.values,
    )
    await conn.execute(
        f"CREATE TEMP TABLE {_bare(multi)} ON COMMIT DROP AS SELECT id FROM {work}"
        + (" WHERE false" if plan.id_field is None else " GROUP BY id HAVING count(*) > 1")
    )
    if plan.id_field is not None:
        await _classify_edge_conflicts(conn, st, work, multi, props_t, plan, settings)

    limit = await _limit(conn, st, settings)
    lim = _NO_LIMIT if limit is None else limit
    outcome = BatchOutcome()
    c = outcome.counts
    c.total_records = await conn.fetchval(
        f"SELECT coalesce(sum(1 + nvals), 0) FROM {work} WHERE rec < $1", lim
    )
    c.total_records += await _fatal_rows(conn, st, lim) + (0 if limit is None else 1)
    if plan.id_field is not None:
        dup_statuses = "('dup', 'conflict')" if settings.policy == "keep" else "('dup')"
        c.total_duplicates = await conn.fetchval(
            f"""SELECT ((SELECT count(*) FROM {work} WHERE existed AND rec < $1)
                     + (SELECT coalesce(sum(n - 1), 0) FROM (
                            SELECT count(*) AS n FROM {work} w JOIN {multi} USING (id)
                            WHERE NOT w.existed AND w.rec < $1 GROUP BY w.id) x)
                     + (SELECT count(*) FROM {props_t}
                        WHERE status IN {dup_statuses} AND rec < $1))::int8""",
            lim,
        )
    await conn.execute(
        f"""INSERT INTO graph_edges
            (id, label, from_space, from_id, to_space, to_id, properties, property_types)
        SELECT id, label, $2::text, from_id, $3::text, to_id, props, $4::jsonb FROM {work} w
        WHERE rec < $1 AND NOT existed
          AND NOT EXISTS (SELECT 1 FROM {multi} m WHERE m.id = w.id)""",
        lim,
        plan.from_space,
        plan.to_space,
        _types_json(plan.props),
    )
    if plan.id_field is not None:
        await _merge_seen_edges(conn, work, multi, props_t, plan, lim)
    await _report(conn, st, limit, outcome)
    return outcome


def _bare(table: str) -> str:
    """A TEMP table's name without the pg_temp schema (CREATE TEMP TABLE takes no schema)."""
    return table.split(".", 1)[1]


def _space_note(space: str) -> str:
    return f" (id space {space})" if space else ""


async def _classify_edge_conflicts(
    conn: asyncpg.Connection,
    st: Staging,
    work: str,
    multi: str,
    props_t: str,
    plan: EdgePlan,
    settings: MergeSettings,
) -> None:
    """ID_ASSIGNED_TO_MULTIPLE_EDGES for rows that reuse an id for another edge (one loaded
    before, or the id's first row in the batch), then a status per property value of the edges
    seen before: new, dup or conflict (a SINGLE_CARDINALITY_VIOLATION under policy error)."""
    await conn.execute(
        f"""WITH firsts AS (
            SELECT DISTINCT ON (w.id) w.id, w.label, w.from_id, w.to_id
            FROM {work} w JOIN {multi} USING (id) WHERE NOT w.existed ORDER BY w.id, w.rec),
        refs AS (
            SELECT w.rec, w.id,
                   CASE WHEN w.existed THEN w.g_label ELSE f.label END AS label,
                   CASE WHEN w.existed THEN w.g_from_space ELSE $1::text COLLATE "C" END
                       AS from_space,
                   CASE WHEN w.existed THEN w.g_from_id ELSE f.from_id END AS from_id,
                   CASE WHEN w.existed THEN w.g_to_space ELSE $2::text COLLATE "C" END
                       AS to_space,
                   CASE WHEN w.existed THEN w.g_to_id ELSE f.to_id END AS to_id,
                   (w.label, $1::text COLLATE "C", w.from_id, $2::text COLLATE "C", w.to_id)
                       AS mine
            FROM {work} w LEFT JOIN firsts f ON f.id = w.id
            WHERE w.existed OR f.id IS NOT NULL)
        INSERT INTO {st.errs} (rec, code, kind, fatal, message)
        SELECT rec, 'ID_ASSIGNED_TO_MULTIPLE_EDGES', 'insert', true,
               format('edge id "%s" is already used by an edge %s from "%s" to "%s"',
                      id, label, from_id, to_id)
        FROM refs WHERE mine IS DISTINCT FROM (label, from_space, from_id, to_space, to_id)""",
        plan.from_space,
        plan.to_space,
    )
    await conn.execute(f"DELETE FROM {work} w USING {st.errs} e WHERE e.rec = w.rec AND e.fatal")
    if settings.policy == "replace":
        status = "CASE WHEN value = coalesce(prev, existing) THEN 'dup' ELSE 'new' END"
    else:
        status = """CASE WHEN existing IS NOT NULL
                              THEN (CASE WHEN value = existing THEN 'dup' ELSE 'conflict' END)
                         WHEN n = 1 THEN 'new' WHEN value = first THEN 'dup' ELSE 'conflict' END"""
    await conn.execute(
        f"""CREATE TEMP TABLE {_bare(props_t)} ON COMMIT DROP AS
        SELECT x.rec, x.id, x.key, x.value, {status} AS status FROM (
            SELECT w.rec, w.id, p.key, p.value, w.g_props -> p.key AS existing,
                   row_number() OVER k AS n, first_value(p.value) OVER k AS first,
                   lag(p.value) OVER k AS prev
            FROM {work} w JOIN {multi} USING (id) CROSS JOIN LATERAL jsonb_each(w.props) AS p
            WINDOW k AS (PARTITION BY w.id, p.key ORDER BY w.rec)
            UNION ALL
            SELECT w.rec, w.id, p.key, p.value, w.g_props -> p.key, 1, NULL, NULL
            FROM {work} w CROSS JOIN LATERAL jsonb_each(w.props) AS p
            WHERE w.existed AND NOT EXISTS (SELECT 1 FROM {multi} m WHERE m.id = w.id)) x"""
    )
    if settings.policy == "error":
        await conn.execute(
            f"""INSERT INTO {st.errs} (rec, code, kind, fatal, message)
            SELECT rec, 'SINGLE_CARDINALITY_VIOLATION', 'insert', false,
                   format('edge "%s" already has another value for property "%s" (edge properties'
                          ' are single-valued; set updateSingleCardinalityProperties to'
                          ' replace it)', id, key)
            FROM {props_t} WHERE status = 'conflict'"""
        )


async def _merge_seen_edges(
    conn: asyncpg.Connection, work: str, multi: str, props_t: str, plan: EdgePlan, lim: int
) -> None:
    """Merge the edges seen before: ids loaded before get their new property values, ids
    repeated in the batch are inserted once (their first row) with the values to keep."""
    merged = f"""SELECT id, jsonb_object_agg(key, value ORDER BY rec) AS props,
                        jsonb_object_agg(key, $2::jsonb -> key) AS types
                 FROM {props_t} WHERE status = 'new' AND rec < $1 GROUP BY id"""
    await conn.execute(
        f"""UPDATE graph_edges g
        SET properties = g.properties || m.props, property_types = g.property_types || m.types
        FROM ({merged}) m WHERE g.id = m.id""",
        lim,
        _types_json(plan.props),
    )
    await conn.execute(
        f"""WITH heads AS (
            SELECT DISTINCT ON (w.id) w.id, w.label, w.from_id, w.to_id
            FROM {work} w JOIN {multi} USING (id)
            WHERE NOT w.existed AND w.rec < $1 ORDER BY w.id, w.rec)
        INSERT INTO graph_edges
            (id, label, from_space, from_id, to_space, to_id, properties, property_types)
        SELECT h.id, h.label, $3::text, h.from_id, $4::text, h.to_id, coalesce(m.props, '{{}}'),
               coalesce(m.types, '{{}}')
        FROM heads h LEFT JOIN ({merged}) m ON m.id = h.id""",
        lim,
        _types_json(plan.props),
        plan.from_space,
        plan.to_space,
    )


# --------------------------------------------------------------------------- reads


def _decode(value: Any, type_: str | None) -> Any:
    """A stored jsonb value as Python: dates (epoch ms) become aware UTC datetimes, Float and
    Double values floats (jsonb writes 1e308 as an integer, NaN and Infinity as strings)."""
    if type_ in DATE_TYPES and isinstance(value, int):
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=value)
    if type_ in FLOAT_TYPES:
        return float(value)
    return value


_GET_VERTEX = """
SELECT v.id, v.id_space,
       ARRAY(SELECT l.label FROM graph_vertex_labels l
             WHERE l.id_space = v.id_space AND l.id = v.id ORDER BY l.label) AS labels,
       ARRAY(SELECT jsonb_build_array(p.name, p.type, p.value) FROM graph_vertex_properties p
             WHERE p.id_space = v.id_space AND p.vertex_id = v.id ORDER BY p.name, p.value) AS props
FROM graph_vertices v WHERE v.id_space = $1 AND v.id = $2
"""


async def get_vertex(
    conn: asyncpg.Connection, id: str, id_space: str = ""
) -> dict[str, Any] | None:
    """``{"id", "id_space", "labels": [...], "properties": {name: [values]}}`` (values as in
    Gremlin's valueMap: a list per name, typed as declared), or None."""
    row = await conn.fetchrow(_GET_VERTEX, id_space, id)
    if row is None:
        return None
    properties: dict[str, list[Any]] = {}
    for item in row["props"]:
        name, type_, value = json.loads(item)
        properties.setdefault(name, []).append(_decode(value, type_))
    return {
        "id": row["id"],
        "id_space": row["id_space"],
        "labels": list(row["labels"]),
        "properties": properties,
    }


_GET_EDGE = """
SELECT id, label, from_space, from_id, to_space, to_id, properties::text, property_types::text
FROM graph_edges WHERE id = $1
"""


async def get_edge(conn: asyncpg.Connection, id: str) -> dict[str, Any] | None:
    """``{"id", "label", "from", "to", "from_space", "to_space", "properties": {name: value}}``
    or None."""
    row = await conn.fetchrow(_GET_EDGE, id)
    if row is None:
        return None
    types = json.loads(row["property_types"])
    props = json.loads(row["properties"])
    return {
        "id": row["id"],
        "label": row["label"],
        "from": row["from_id"],
        "to": row["to_id"],
        "from_space": row["from_space"],
        "to_space": row["to_space"],
        "properties": {k: _decode(v, types.get(k)) for k, v in props.items()},
    }


_COUNT_BY_LABEL = """
SELECT 'vertices' AS kind, label, count(*) AS n FROM graph_vertex_labels GROUP BY label
UNION ALL
SELECT 'edges', label, count(*) FROM graph_edges GROUP BY label
"""


async def count_by_label(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    """``{"vertices": {label: n}, "edges": {label: n}}`` (a vertex counts under each label)."""
    out: dict[str, dict[str, int]] = {"vertices": {}, "edges": {}}
    for row in await conn.fetch(_COUNT_BY_LABEL):
        out[row["kind"]][row["label"]] = row["n"]
    return out


_COUNT_GRAPH = (
    "SELECT (SELECT count(*) FROM graph_vertices) AS v, (SELECT count(*) FROM graph_edges) AS e"
)


async def count_graph(conn: asyncpg.Connection) -> dict[str, int]:
    row = await conn.fetchrow(_COUNT_GRAPH)
    return {"vertices": row["v"], "edges": row["e"]}
