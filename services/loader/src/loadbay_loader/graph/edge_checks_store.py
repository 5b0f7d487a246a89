"""The full checks of an edge batch, and the SQL of an edge record that the fast path shares.

One statement builds the batch's work table: per record its fields, its properties as jsonb,
a flag per error of its own (blank or over-long id, endpoint or label; an endpoint vertex that
is not loaded; a value not of its column's type) and, if its id is loaded already, that edge.
The errors are logged from the flags, and rows with an error of their own are set aside. Ids
seen before (loaded earlier, or more than once in the batch) then go through the checks that
need the other rows of the id: ID_ASSIGNED_TO_MULTIPLE_EDGES, and single cardinality, where
window functions and sorts are kept to those ids. The fail_on_error limit applies to all of it
(only records before the first error load). Then the edges loaded before are updated and the
new ones inserted: in bulk mode (index_store.py) with the edge table's indexes dropped
and built again after.
"""

from __future__ import annotations

import json

import asyncpg

from loadbay_loader.graph import index_store as indexes
from loadbay_loader.graph.plans import (
    EDGE_LABEL,
    MAX_KEY_BYTES,
    NO_LIMIT,
    BatchOutcome,
    EdgePlan,
    MergeSettings,
)
from loadbay_loader.graph.staging_store import (
    Args,
    Staged,
    Staging,
    bare,
    error_limit,
    fatal_rows,
    report,
    trimmed,
)
from loadbay_loader.graph.values_store import (
    PropertyValue,
    json_text,
    json_value,
    mismatch_message,
    present_check,
    props_object,
    types_json,
    valid_check,
)


def edge_columns(plan: EdgePlan) -> dict[str, str]:
    """SQL expressions (over the trimmed staging relation ``s``) of an edge's fields."""
    return {
        "id": "gen_random_uuid()::text" if plan.id_field is None else f"s.t{plan.id_field}",
        # "C" like the staged and stored labels (they meet in one CASE when an id repeats)
        "label": f"'{EDGE_LABEL}'::text COLLATE \"C\""
        if plan.label_field is None
        else f"s.t{plan.label_field}",
        "from_id": f"s.t{plan.from_field}",
        "to_id": f"s.t{plan.to_field}",
    }


def edge_props(plan: EdgePlan, settings: MergeSettings, a: Args, *, checked: bool) -> str:
    """SQL: the jsonb properties of a staged edge (``checked``: invalid values left out)."""
    props = []
    for c in plan.props:
        x = f"s.t{c.field}"
        valid = valid_check(c, x)
        present = present_check(c, settings)
        if checked and valid != "true":
            present = f"({present} AND {valid})"
        props.append(
            PropertyValue(
                a(c.name), a(json.dumps(c.name)), json_value(c, x), json_text(c, x), present
            )
        )
    return props_object(props)


def edge_records(
    st: Staging,
    staged: Staged,
    plan: EdgePlan,
    settings: MergeSettings,
    a: Args,
    *,
    values: bool,
    existing: bool,
) -> str:
    """SQL relation ``r``: per staged record rec, id, label, from_id, to_id, the flags of its
    row errors (id_bad, from_blank, to_blank, label_bad, from_missing, to_missing, and
    ``fatal`` for any of them) and ``mismatch`` (a value not of its column's type); with
    ``values`` its valid values as jsonb ``props`` and the number of its values, valid or
    not, ``nvals``; with ``existing`` the edge already loaded with its id (``existed``,
    ``g_label`` ... ``g_props``). The filters of its users sit above it, so the planner sizes
    its joins by the batch's rows."""
    e = edge_columns(plan)
    fs, ts = a(plan.from_space), a(plan.to_space)
    flags = {
        "id_bad": "false"
        if plan.id_field is None
        else f"({e['id']} IS NULL OR octet_length({e['id']}) > {MAX_KEY_BYTES})",
        "from_blank": f"({e['from_id']} IS NULL)",
        "to_blank": f"({e['to_id']} IS NULL)",
        "label_bad": "false"
        if plan.label_field is None
        else f"({e['label']} IS NULL OR {e['label']} = ''"
        f" OR octet_length({e['label']}) > {MAX_KEY_BYTES})",
        "from_missing": f"({e['from_id']} IS NOT NULL AND vf.id IS NULL)",
        "to_missing": f"({e['to_id']} IS NOT NULL AND vt.id IS NULL)",
    }
    checks = [
        f"({present_check(c, settings)} AND NOT {valid_check(c, f's.t{c.field}')})"
        for c in plan.props
        if valid_check(c, "x") != "true"
    ]
    columns = [
        "s.rec",
        *(f"{sql} AS {name}" for name, sql in e.items()),
        *(f"{sql} AS {name}" for name, sql in flags.items()),
        f"({' OR '.join(flags.values())}) AS fatal",
        f"({' OR '.join(checks) or 'false'}) AS mismatch",
    ]
    join = ""
    if values:
        columns.append(f"{edge_props(plan, settings, a, checked=True)} AS props")
        nvals = " + ".join(f"({present_check(c, settings)})::int" for c in plan.props) or "0"
        columns.append(f"{nvals} AS nvals")
    if existing:
        columns.append(
            "g.id IS NOT NULL AS existed, g.label AS g_label, g.from_space AS g_from_space,"
            " g.from_id AS g_from_id, g.to_space AS g_to_space, g.to_id AS g_to_id,"
            " g.properties AS g_props"
        )
        # One index lookup per record: a hash join would read the whole edge table, which
        # is most often much larger than the batch.
        join = (
            "LEFT JOIN LATERAL (SELECT g.id, g.label, g.from_space, g.from_id, g.to_space,"
            f" g.to_id, g.properties FROM graph_edges g WHERE g.id = {e['id']} OFFSET 0) g ON true"
        )
    elif values:
        columns.append("false AS existed, NULL::jsonb AS g_props")
    return f"""(SELECT {", ".join(columns)}
        FROM {trimmed(st, staged)}
        LEFT JOIN graph_vertices vf ON vf.id_space = {fs} AND vf.id = {e["from_id"]}
        LEFT JOIN graph_vertices vt ON vt.id_space = {ts} AND vt.id = {e["to_id"]}
        {join} OFFSET 0) r"""


async def log_row_errors(
    conn: asyncpg.Connection,
    st: Staging,
    staged: Staged,
    plan: EdgePlan,
    settings: MergeSettings,
    records: str,
) -> None:
    """Log the errors of the flagged rows of table ``records`` (made of :func:`edge_records`):
    a fatal error per flag, and a PARSING_ERROR per value not of its column's type."""
    a = Args()
    await conn.execute(
        f"""INSERT INTO {st.errs} (rec, code, kind, fatal, message)
        SELECT r.rec, x.code, x.kind, true, x.message FROM {records} r
        CROSS JOIN LATERAL (VALUES
            (r.id_bad, 'PARSING_ERROR', 'parse',
             format('blank or over-long %s: every edge needs an id of at most {MAX_KEY_BYTES}'
                    ' bytes', {a(plan.id_header)})),
            (r.from_blank, 'PARSING_ERROR', 'parse', format('blank %s', {a(plan.from_header)})),
            (r.to_blank, 'PARSING_ERROR', 'parse', format('blank %s', {a(plan.to_header)})),
            (r.label_bad, 'PARSING_ERROR', 'parse',
             format('blank or over-long %s: an edge needs one label', {a(plan.label_header)})),
            (r.from_missing, 'FROM_OR_TO_VERTEX_ARE_MISSING', 'insert',
             format('%s vertex "%s"%s does not exist (load vertex files before edge files)',
                    {a(plan.from_header)}, r.from_id, {a(_space_note(plan.from_space))})),
            (r.to_missing, 'FROM_OR_TO_VERTEX_ARE_MISSING', 'insert',
             format('%s vertex "%s"%s does not exist (load vertex files before edge files)',
                    {a(plan.to_header)}, r.to_id, {a(_space_note(plan.to_space))}))
        ) AS x(bad, code, kind, message)
        WHERE r.fatal AND x.bad""",
        *a.values,
    )
    a = Args()
    mismatches = [
        f"({present_check(c, settings)} AND NOT {valid_check(c, f's.t{c.field}')},"
        f" {mismatch_message(c, a, f's.t{c.field}')})"
        for c in plan.props
        if valid_check(c, "x") != "true"
    ]
    if mismatches:
        await conn.execute(
            f"""INSERT INTO {st.errs} (rec, code, kind, fatal, message)
            SELECT s.rec, 'PARSING_ERROR', 'datatype', false, m.message
            FROM {trimmed(st, staged)} JOIN {records} r ON r.rec = s.rec AND r.mismatch
            CROSS JOIN LATERAL (VALUES {", ".join(mismatches)}) AS m(bad, message)
            WHERE m.bad""",
            *a.values,
        )


async def merge_edges_carefully(
    conn: asyncpg.Connection, st: Staging, plan: EdgePlan, settings: MergeSettings, staged: Staged
) -> BatchOutcome:
    """The full checks: row errors, ids seen before (loaded, or earlier in the batch), single
    cardinality, the fail_on_error limit; then the merge (inside the caller's transaction)."""
    work, multi, props_t = st.table("ework"), st.table("emulti"), st.table("eprops")
    ids = plan.id_field is not None
    bulk = await indexes.bulk_worth_it(
        conn, "graph_edges", staged.rows
    ) and await indexes.lock_for_bulk(conn, indexes.EDGE_TABLES)
    if not bulk:  # before the first read of the table (see index_store.py)
        await indexes.lock(conn, indexes.EDGE_TABLES, "ROW EXCLUSIVE")
    a = Args()
    records = edge_records(st, staged, plan, settings, a, values=True, existing=ids)
    await conn.execute(
        f"CREATE TEMP TABLE {bare(work)} ON COMMIT DROP AS SELECT * FROM {records}", *a.values
    )
    await log_row_errors(conn, st, staged, plan, settings, work)
    await conn.execute(f"DELETE FROM {work} WHERE fatal")
    await conn.execute(
        f"CREATE TEMP TABLE {bare(multi)} ON COMMIT DROP AS SELECT id FROM {work}"
        + (" GROUP BY id HAVING count(*) > 1" if ids else " WHERE false")
    )
    if ids:
        await _classify_edge_conflicts(conn, st, work, multi, props_t, plan, settings)

    limit = await error_limit(conn, st, settings)
    lim = NO_LIMIT if limit is None else limit
    outcome = BatchOutcome()
    c = outcome.counts
    c.total_records = await conn.fetchval(
        f"SELECT coalesce(sum(1 + nvals), 0) FROM {work} WHERE rec < $1", lim
    )
    c.total_records += await fatal_rows(conn, st, lim) + (0 if limit is None else 1)
    if ids:
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
        await _update_loaded_edges(conn, props_t, plan, lim)
    dropped = await indexes.drop_indexes(conn, indexes.EDGE_TABLES) if bulk else None
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
    if ids:
        await _insert_repeated_edges(conn, work, multi, props_t, plan, lim)
    if dropped is not None:
        await indexes.rebuild_indexes(conn, dropped)
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


_NEW_VALUES = """SELECT id, jsonb_object_agg(key, value ORDER BY rec) AS props,
                       jsonb_object_agg(key, $2::jsonb -> key) AS types
                FROM {props_t} WHERE status = 'new' AND rec < $1 GROUP BY id"""


async def _update_loaded_edges(
    conn: asyncpg.Connection, props_t: str, plan: EdgePlan, lim: int
) -> None:
    """Edges loaded before get the new values of their properties."""
    await conn.execute(
        f"""UPDATE graph_edges g
        SET properties = g.properties || m.props, property_types = g.property_types || m.types
        FROM ({_NEW_VALUES.format(props_t=props_t)}) m WHERE g.id = m.id""",
        lim,
        types_json(plan.props),
    )


async def _insert_repeated_edges(
    conn: asyncpg.Connection, work: str, multi: str, props_t: str, plan: EdgePlan, lim: int
) -> None:
    """Ids repeated in the batch (and new) are inserted once, as their first row, with the
    values to keep."""
    await conn.execute(
        f"""WITH heads AS (
            SELECT DISTINCT ON (w.id) w.id, w.label, w.from_id, w.to_id
            FROM {work} w JOIN {multi} USING (id)
            WHERE NOT w.existed AND w.rec < $1 ORDER BY w.id, w.rec)
        INSERT INTO graph_edges
            (id, label, from_space, from_id, to_space, to_id, properties, property_types)
        SELECT h.id, h.label, $3::text, h.from_id, $4::text, h.to_id, coalesce(m.props, '{{}}'),
               coalesce(m.types, '{{}}')
        FROM heads h LEFT JOIN ({_NEW_VALUES.format(props_t=props_t)}) m ON m.id = h.id""",
        lim,
        types_json(plan.props),
        plan.from_space,
        plan.to_space,
    )
