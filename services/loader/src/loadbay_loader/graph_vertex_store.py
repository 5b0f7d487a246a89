"""Merging a staged batch of vertex records into the graph store: ids, labels, and property
values of set and single cardinality."""

from __future__ import annotations

import asyncpg

from loadbay_loader.graph_plans import (
    MAX_KEY_BYTES,
    NO_LIMIT,
    VERTEX_LABEL,
    BatchOutcome,
    MergeSettings,
    VertexPlan,
)
from loadbay_loader.graph_staging_store import (
    Args,
    Staging,
    analyze_if_grown,
    bare,
    error_limit,
    fatal_rows,
    report,
    row_count,
    trimmed,
)
from loadbay_loader.graph_values_store import (
    VALUE_GROUP,
    checked_value,
    present_check,
    split_array,
)


async def merge_vertices(
    conn: asyncpg.Connection, st: Staging, plan: VertexPlan, settings: MergeSettings
) -> BatchOutcome:
    """Check and merge the staged vertex records (inside the caller's transaction)."""
    rows, vals, single = st.table("vrows"), st.table("vvals"), st.table("vsingle")
    space = plan.id_space
    a = Args()
    if plan.label_field is None:
        labels = f"ARRAY[{a(VERTEX_LABEL)}]"
    else:
        labels = f"ARRAY(SELECT t FROM {split_array(f's.t{plan.label_field}')} AS l)"
        if not plan.label_required:
            labels = (
                f"(SELECT CASE WHEN cardinality(x) = 0 THEN ARRAY[{a(VERTEX_LABEL)}] ELSE x END"
                f" FROM (SELECT {labels} AS x) y)"
            )
    await conn.execute(
        f"CREATE TEMP TABLE {bare(rows)} ON COMMIT DROP AS"
        f" SELECT s.rec, s.t{plan.id_field} AS id, {labels} AS labels FROM {trimmed(st)}",
        *a.values,
    )
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
    # The properties' values, one row each; in groups of VALUE_GROUP columns per statement,
    # as each column adds about 14 to the query's target list (PostgreSQL's limit: 1,664).
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
            f"{into} SELECT s.rec, v.id, x.* FROM {trimmed(st)} JOIN {rows} v ON v.rec = s.rec"
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

    limit = await error_limit(conn, st, settings)
    lim = NO_LIMIT if limit is None else limit
    outcome = BatchOutcome()
    c = outcome.counts

    new_vertices = row_count(
        await conn.execute(
            f"INSERT INTO graph_vertices (id_space, id) SELECT $1, id FROM {rows} WHERE rec < $2"
            " ON CONFLICT DO NOTHING",
            space,
            lim,
        )
    )
    await analyze_if_grown(conn, "graph_vertices", new_vertices)
    label_records = await conn.fetchval(
        f"SELECT coalesce(sum(cardinality(labels)), 0) FROM {rows} WHERE rec < $1", lim
    )
    inserted = row_count(
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
        inserted = row_count(
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
    c.total_records += await fatal_rows(conn, st, lim) + (0 if limit is None else 1)
    await report(conn, st, limit, outcome)
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
