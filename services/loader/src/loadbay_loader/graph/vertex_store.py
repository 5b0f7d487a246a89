"""Merging a staged batch of vertex records into the graph store: ids, labels, and property
values of set and single cardinality."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from loadbay_loader.graph import index_store as indexes
from loadbay_loader.graph.plans import (
    MAX_KEY_BYTES,
    NO_LIMIT,
    VERTEX_LABEL,
    BatchOutcome,
    MergeSettings,
    VertexPlan,
)
from loadbay_loader.graph.staging_store import (
    Args,
    Staged,
    Staging,
    analyze_if_grown,
    bare,
    error_limit,
    fatal_rows,
    report,
    row_count,
    trimmed,
)
from loadbay_loader.graph.values_store import (
    VALUE_GROUP,
    checked_value,
    present_check,
    split_array,
)


async def merge_vertices(
    conn: asyncpg.Connection, st: Staging, plan: VertexPlan, settings: MergeSettings, staged: Staged
) -> BatchOutcome:
    """Check and merge the staged vertex records (inside the caller's transaction)."""
    rows, vals, single = st.table("vrows"), st.table("vvals"), st.table("vsingle")
    space = plan.id_space
    # Bulk mode (index_store.py) when the batch is large against the graph's vertices.
    bulk = await indexes.bulk_worth_it(
        conn, "graph_vertices", staged.rows
    ) and await indexes.lock_for_bulk(conn, indexes.VERTEX_TABLES)
    if not bulk:  # before the first read of a table (see index_store.py)
        await indexes.lock(conn, indexes.VERTEX_TABLES, "ROW EXCLUSIVE")
    a = Args()
    await conn.execute(
        f"CREATE TEMP TABLE {bare(rows)} ON COMMIT DROP AS SELECT s.rec,"
        f" s.t{plan.id_field} AS id, {_labels(plan, a)} AS labels FROM {trimmed(st, staged)}",
        *a.values,
    )
    await _row_errors(conn, st, rows, plan)
    branches_made = await _stage_values(conn, st, staged, rows, vals, plan, settings)
    has_single = any(c.single for c in plan.props) or plan.id_property is not None
    if has_single:
        await _classify_single_vertex_values(conn, st, vals, single, space, settings)

    limit = await error_limit(conn, st, settings)
    lim = NO_LIMIT if limit is None else limit
    outcome = BatchOutcome()
    c = outcome.counts
    if has_single and settings.policy == "replace":
        await _delete_replaced_values(conn, single, space, lim)
    dropped = await indexes.drop_indexes(conn, indexes.VERTEX_TABLES) if bulk else None
    new = _NewRows(dropped is not None)
    if new.bulk:
        new.empty = {t for t in indexes.VERTEX_TABLES if await indexes.is_empty(conn, t)}
    new_vertices = row_count(
        await conn.execute(
            "INSERT INTO graph_vertices (id_space, id) "
            + new.rows(
                "graph_vertices",
                f"SELECT $1::text AS id_space, id FROM {rows} WHERE rec < $2",
                "SELECT 1 FROM graph_vertices g WHERE g.id_space = x.id_space AND g.id = x.id",
            ),
            space,
            lim,
        )
    )
    label_records = await conn.fetchval(
        f"SELECT coalesce(sum(cardinality(labels)), 0) FROM {rows} WHERE rec < $1", lim
    )
    inserted = row_count(
        await conn.execute(
            "INSERT INTO graph_vertex_labels (id_space, id, label) "
            + new.rows(
                "graph_vertex_labels",
                f"SELECT $1::text AS id_space, v.id, l AS label"
                f" FROM {rows} v, unnest(v.labels) AS l WHERE v.rec < $2",
                "SELECT 1 FROM graph_vertex_labels g"
                " WHERE g.id_space = x.id_space AND g.id = x.id AND g.label = x.label",
            ),
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
        inserted = row_count(
            await conn.execute(
                _INSERT_VALUES
                + new.rows(
                    "graph_vertex_properties",
                    f"SELECT $1::text AS id_space, id AS vertex_id, name, type, value FROM {vals}"
                    " WHERE NOT single AND value IS NOT NULL AND rec < $2",
                    _SAME_VALUE,
                ),
                space,
                lim,
            )
        )
        c.total_records += value_records
        c.total_duplicates += attempted - inserted
    if has_single:
        c.total_duplicates += await _insert_single_values(conn, single, space, settings, lim, new)
    if dropped is not None:
        await indexes.rebuild_indexes(conn, dropped)
    await analyze_if_grown(conn, "graph_vertices", new_vertices)
    c.total_records += await fatal_rows(conn, st, lim) + (0 if limit is None else 1)
    await report(conn, st, limit, outcome)
    return outcome


_INSERT_VALUES = "INSERT INTO graph_vertex_properties (id_space, vertex_id, name, type, value) "
# A loaded property value equal to the row x's (x: id_space, vertex_id, name, value).
_SAME_VALUE = """SELECT 1 FROM graph_vertex_properties p
    WHERE p.id_space = x.id_space AND p.vertex_id = x.vertex_id AND p.name = x.name
      AND p.value_key = md5(x.value::text)::uuid"""


@dataclass
class _NewRows:
    """How a batch's inserts leave out the rows loaded already: ON CONFLICT DO NOTHING on the
    tables' unique indexes, or in bulk mode (indexes dropped) DISTINCT and an anti-join
    against what is loaded, left out for a table that was empty."""

    bulk: bool
    empty: set[str] = field(default_factory=set)

    def rows(self, table: str, select: str, loaded: str) -> str:
        """SQL after an INSERT's column list: the rows of ``select`` (its columns named as the
        table's) not loaded yet; ``loaded`` finds a loaded row equal to its row ``x``."""
        if not self.bulk:
            return f"{select} ON CONFLICT DO NOTHING"
        distinct = f"SELECT DISTINCT * FROM ({select}) x"
        return distinct if table in self.empty else f"{distinct} WHERE NOT EXISTS ({loaded})"


def _labels(plan: VertexPlan, a: Args) -> str:
    """SQL: the labels of a staged vertex record, as a text array. A cell without ``;`` holds
    one label (or none when empty) and skips splitting, which costs a regular expression."""
    if plan.label_field is None:
        return f"ARRAY[{a(VERTEX_LABEL)}]"
    x = f"s.t{plan.label_field}"
    labels = (
        f"CASE WHEN strpos({x}, ';') = 0 THEN (CASE WHEN {x} = '' THEN '{{}}'::text[]"
        f" ELSE ARRAY[{x}] END) ELSE ARRAY(SELECT t FROM {split_array(x)} AS l) END"
    )
    if plan.label_required:
        return labels
    return (
        f"(SELECT CASE WHEN cardinality(x) = 0 THEN ARRAY[{a(VERTEX_LABEL)}] ELSE x END"
        f" FROM (SELECT {labels} AS x) y)"
    )


async def _row_errors(conn: asyncpg.Connection, st: Staging, rows: str, plan: VertexPlan) -> None:
    """Log the rows that cannot load (blank or over-long id, no label, an over-long label)
    and set them aside."""
    a = Args()
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


async def _stage_values(
    conn: asyncpg.Connection,
    st: Staging,
    staged: Staged,
    rows: str,
    vals: str,
    plan: VertexPlan,
    settings: MergeSettings,
) -> bool:
    """The properties' values, one row each (NULL value: not of its type, logged), into
    ``vals``; False if the feed has no property. In groups of VALUE_GROUP columns per
    statement, as each column adds about 14 to the query's target list (PostgreSQL's limit:
    1,664)."""
    branches_made = False
    for start in range(0, max(len(plan.props), 1), VALUE_GROUP):
        a = Args()
        branches = []
        for col in plan.props[start : start + VALUE_GROUP]:
            meta = (
                f"{a(col.name)} AS name, {a(col.type)} AS type, {col.single} AS single,"
                f" {a(col.header)} AS header"
            )
            if col.array:
                branches.append(
                    f"SELECT {meta}, e.t AS text, {checked_value(col, 'e.t')} AS value"
                    f" FROM {split_array(f's.t{col.field}')} AS e"
                )
            else:
                x = f"s.t{col.field}"
                branches.append(
                    f"SELECT {meta}, {x} AS text, {checked_value(col, x)} AS value"
                    f" WHERE {present_check(col, settings)}"
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
            else (f"CREATE TEMP TABLE {bare(vals)} ON COMMIT DROP AS")
        )
        await conn.execute(
            f"{into} SELECT s.rec, v.id, x.* FROM {trimmed(st, staged)}"
            f" JOIN {rows} v ON v.rec = s.rec"
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
    return branches_made


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
        f"""CREATE TEMP TABLE {bare(single)} ON COMMIT DROP AS
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


def _finals(single: str) -> str:
    """SQL: the value each (vertex, single property) ends with under policy replace: its
    last one in record order."""
    return (
        f"SELECT DISTINCT ON (id, name) id, name, type, value FROM {single}"
        " WHERE rec < $2 ORDER BY id, name, rec DESC"
    )


async def _delete_replaced_values(
    conn: asyncpg.Connection, single: str, space: str, lim: int
) -> None:
    """Policy replace: delete the loaded values that a final value replaces."""
    await conn.execute(
        f"""DELETE FROM graph_vertex_properties p USING ({_finals(single)}) f
        WHERE p.id_space = $1 AND p.vertex_id = f.id AND p.name = f.name
          AND p.value_key <> md5(f.value::text)::uuid""",
        space,
        lim,
    )


async def _insert_single_values(
    conn: asyncpg.Connection,
    single: str,
    space: str,
    settings: MergeSettings,
    lim: int,
    new: _NewRows,
) -> int:
    """Write the single-cardinality values; returns their duplicates."""
    values = "SELECT $1::text AS id_space, id AS vertex_id, name, type, value"
    if settings.policy == "replace":
        select = f"{values} FROM ({_finals(single)}) f"
    else:  # 'new' values: none loaded, one per vertex and name
        select = f"{values} FROM {single} WHERE status = 'new' AND rec < $2"
    await conn.execute(
        _INSERT_VALUES + new.rows("graph_vertex_properties", select, _SAME_VALUE), space, lim
    )
    dup_statuses = "('dup', 'conflict')" if settings.policy == "keep" else "('dup')"
    n: int = await conn.fetchval(
        f"SELECT count(*) FROM {single} WHERE status IN {dup_statuses} AND rec < $1", lim
    )
    return n
