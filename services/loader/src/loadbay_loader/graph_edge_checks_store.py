"""The full checks of an edge batch: each row's own errors, ids seen before (loaded earlier or
repeated in the batch), single cardinality and the fail_on_error limit, then the merge."""

from __future__ import annotations

import asyncpg

from loadbay_loader.graph_plans import (
    EDGE_LABEL,
    MAX_KEY_BYTES,
    NO_LIMIT,
    BatchOutcome,
    EdgePlan,
    MergeSettings,
)
from loadbay_loader.graph_staging_store import (
    Args,
    Staging,
    bare,
    error_limit,
    fatal_rows,
    report,
    trimmed,
)
from loadbay_loader.graph_values_store import (
    json_value,
    mismatch_message,
    present_check,
    props_object,
    types_json,
    valid_check,
)


def edge_columns(plan: EdgePlan, a: Args) -> dict[str, str]:
    """SQL expressions (over the trimmed staging relation ``s``) of an edge's fields."""
    return {
        "id": "gen_random_uuid()::text" if plan.id_field is None else f"s.t{plan.id_field}",
        "label": f"'{EDGE_LABEL}'::text" if plan.label_field is None else f"s.t{plan.label_field}",
        "from_id": f"s.t{plan.from_field}",
        "to_id": f"s.t{plan.to_field}",
    }


def edge_props(plan: EdgePlan, settings: MergeSettings, a: Args, *, checked: bool) -> str:
    """SQL: the jsonb properties of a staged edge (``checked``: invalid values left out)."""
    pairs, present = [], []
    for c in plan.props:
        x = f"s.t{c.field}"
        pairs.append((a(c.name), json_value(c, x)))
        valid = valid_check(c, x)
        checks = checked and valid != "true"
        present.append(
            f"({present_check(c, settings)} AND {valid})" if checks else present_check(c, settings)
        )
    return props_object(pairs, present)


async def edge_row_errors(
    conn: asyncpg.Connection, st: Staging, plan: EdgePlan, settings: MergeSettings
) -> None:
    """Log every staged row's own errors: blank or over-long id, endpoint or label (fatal),
    missing endpoint vertices (fatal) and values not of their column's type."""
    a = Args()
    e = edge_columns(plan, a)
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
        FROM {trimmed(st)}
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
    a = Args()
    mismatches = [
        f"SELECT s.rec, {mismatch_message(c, a, f's.t{c.field}')} AS message FROM {trimmed(st)}"
        f" WHERE {present_check(c, settings)} AND NOT ({valid_check(c, f's.t{c.field}')})"
        for c in plan.props
        if valid_check(c, "x") != "true"
    ]
    if mismatches:
        await conn.execute(
            f"INSERT INTO {st.errs} (rec, code, kind, fatal, message)"
            f" SELECT rec, 'PARSING_ERROR', 'datatype', false, message"
            f" FROM ({' UNION ALL '.join(mismatches)}) m",
            *a.values,
        )


async def merge_edges_carefully(
    conn: asyncpg.Connection, st: Staging, plan: EdgePlan, settings: MergeSettings
) -> BatchOutcome:
    """The full checks: row errors, ids seen before (loaded, or earlier in the batch), single
    cardinality, the fail_on_error limit; then the merge. Sorting is kept to the ids that
    occur more than once in the batch, usually none."""
    work, multi, props_t = st.table("ework"), st.table("emulti"), st.table("eprops")
    await edge_row_errors(conn, st, plan, settings)
    a = Args()
    e = edge_columns(plan, a)
    props = edge_props(plan, settings, a, checked=True)
    nvals = " + ".join(f"({present_check(c, settings)})::int" for c in plan.props) or "0"
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
        f"""CREATE TEMP TABLE {bare(work)} ON COMMIT DROP AS
        SELECT s.rec, {e["id"]} AS id, {e["label"]} AS label, {e["from_id"]} AS from_id,
               {e["to_id"]} AS to_id, {props} AS props, {nvals} AS nvals, {existing}
        FROM {trimmed(st)} {join}
        WHERE NOT EXISTS (SELECT 1 FROM {st.errs} x WHERE x.rec = s.rec AND x.fatal)""",
        *a.values,
    )
    await conn.execute(
        f"CREATE TEMP TABLE {bare(multi)} ON COMMIT DROP AS SELECT id FROM {work}"
        + (" WHERE false" if plan.id_field is None else " GROUP BY id HAVING count(*) > 1")
    )
    if plan.id_field is not None:
        await _classify_edge_conflicts(conn, st, work, multi, props_t, plan, settings)

    limit = await error_limit(conn, st, settings)
    lim = NO_LIMIT if limit is None else limit
    outcome = BatchOutcome()
    c = outcome.counts
    c.total_records = await conn.fetchval(
        f"SELECT coalesce(sum(1 + nvals), 0) FROM {work} WHERE rec < $1", lim
    )
    c.total_records += await fatal_rows(conn, st, lim) + (0 if limit is None else 1)
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
        types_json(plan.props),
    )
    if plan.id_field is not None:
        await _merge_seen_edges(conn, work, multi, props_t, plan, lim)
    await report(conn, st, limit, outcome)
    return outcome


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
        f"""CREATE TEMP TABLE {bare(props_t)} ON COMMIT DROP AS
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
        types_json(plan.props),
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
        types_json(plan.props),
        plan.from_space,
        plan.to_space,
    )
