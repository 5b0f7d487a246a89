"""Merging a staged batch of edge records into the graph store.

Edges, the bulk of a graph, take the cheapest path that is still exact: one INSERT of the rows
without a problem, with no ON CONFLICT (it doubles the insert's cost) so that an id already
taken raises and rolls the attempt back. A batch at least half the edge table's size (a first
load into an empty graph, above all) does it in bulk mode (index_store.py): it checks
that none of its ids is loaded, drops the table's indexes, inserts, and builds them again,
which fails on an id repeated in the batch. Rows left out because of their own errors are
logged and, if they only lose a bad value, added (when ``fail_on_error`` is off). Ids seen
before (loaded earlier, or twice in the batch) and errors to stop at go through the full
checks (edge_checks_store.py).

Cost (see bench/README.md for the figures): a first load of 1M edges with two properties is
mostly the INSERT writing the rows and their WAL, the hash joins that check both endpoints
of every edge, and building the typed jsonb properties; the primary key built afterwards costs
a fifth of keeping it up to date row by row.
"""

from __future__ import annotations

import asyncpg

from loadbay_loader.graph import index_store as indexes
from loadbay_loader.graph.edge_checks_store import (
    edge_columns,
    edge_props,
    edge_records,
    log_row_errors,
    merge_edges_carefully,
)
from loadbay_loader.graph.plans import MAX_KEY_BYTES, BatchOutcome, EdgePlan, MergeSettings
from loadbay_loader.graph.staging_store import (
    Args,
    Staged,
    Staging,
    bare,
    report,
    row_count,
    trimmed,
)
from loadbay_loader.graph.values_store import guard_check, present_check, types_json


class _NotClean(Exception):
    """The optimistic edge insert met a row it cannot take as is: roll it back."""


async def merge_edges(
    conn: asyncpg.Connection, st: Staging, plan: EdgePlan, settings: MergeSettings, staged: Staged
) -> BatchOutcome:
    """Check and merge the staged edge records (inside the caller's transaction).

    One INSERT of the rows without any problem is tried first (in a savepoint; it fails on
    an id already taken). If it took every row, the batch is done. If it left rows out and
    ``fail_on_error`` is off, the errors are logged and the rows that only lost a bad value
    are added. Otherwise (an id seen before, or an error to stop at) the savepoint is rolled
    back and the batch goes through :func:`merge_edges_carefully`.
    """
    if not staged.parse_errors and staged.rows:
        try:
            async with conn.transaction():
                return await _insert_clean_edges(conn, st, plan, settings, staged)
        except (_NotClean, asyncpg.UniqueViolationError, asyncpg.DataError):
            pass  # a DataError: a value that is not of its column's type
    # Another load may insert one of our ids between our check and our insert: go again.
    for attempt in range(2):
        try:
            async with conn.transaction():
                return await merge_edges_carefully(conn, st, plan, settings, staged)
        except asyncpg.UniqueViolationError:
            if attempt:
                raise
    raise AssertionError("unreachable")


async def _insert_clean_edges(
    conn: asyncpg.Connection, st: Staging, plan: EdgePlan, settings: MergeSettings, staged: Staged
) -> BatchOutcome:
    dropped: indexes.DroppedIndexes | None = None
    if await indexes.bulk_worth_it(
        conn, "graph_edges", staged.rows
    ) and await indexes.lock_for_bulk(conn, indexes.EDGE_TABLES):
        if plan.id_field is not None and await _any_loaded(conn, st, plan, staged):
            raise _NotClean
        dropped = await indexes.drop_indexes(conn, indexes.EDGE_TABLES)
    checks = [f"s.t{plan.from_field} IS NOT NULL", f"s.t{plan.to_field} IS NOT NULL"]
    if plan.id_field is not None:  # "" is a valid id, a blank (NULL) one is not
        checks.append(f"octet_length(s.t{plan.id_field}) <= {MAX_KEY_BYTES}")
    if plan.label_field is not None:
        checks.append(f"s.t{plan.label_field} <> ''")
        checks.append(f"octet_length(s.t{plan.label_field}) <= {MAX_KEY_BYTES}")
    for col in plan.props:
        guard = guard_check(col, f"s.t{col.field}")
        if guard != "true":
            checks.append(f"(NOT {present_check(col, settings)} OR {guard})")
    a = Args()
    inserted = row_count(
        await conn.execute(
            _insert_edges_sql(st, staged, plan, settings, a, " AND ".join(checks)), *a.values
        )
    )
    outcome = BatchOutcome()
    if inserted != staged.rows:
        if settings.fail_on_error:
            raise _NotClean
        await _add_rows_with_errors(conn, st, plan, settings, staged, inserted, outcome)
    if dropped is not None:
        await indexes.rebuild_indexes(conn, dropped)  # raises on an id repeated in the batch
    # records: one per row (a row that cannot load counts as one), plus its property values
    outcome.counts.total_records = staged.rows
    if plan.props:
        present = " + ".join(
            f"count(*) FILTER (WHERE {present_check(c, settings)})" for c in plan.props
        )
        outcome.counts.total_records += await conn.fetchval(
            f"SELECT {present} FROM {trimmed(st, staged)}"
            f" WHERE NOT EXISTS (SELECT 1 FROM {st.errs} x WHERE x.rec = s.rec AND x.fatal)"
        )
    return outcome


async def _any_loaded(
    conn: asyncpg.Connection, st: Staging, plan: EdgePlan, staged: Staged
) -> bool:
    """Whether an id of the batch is loaded already (bulk mode would only find out when it
    builds the primary key again, after all the work)."""
    if not await indexes.estimated_rows(conn, "graph_edges"):
        return False
    found: bool = await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {trimmed(st, staged)}"
        f" JOIN graph_edges g ON g.id = s.t{plan.id_field})"
    )
    return found


async def _add_rows_with_errors(
    conn: asyncpg.Connection,
    st: Staging,
    plan: EdgePlan,
    settings: MergeSettings,
    staged: Staged,
    inserted: int,
    outcome: BatchOutcome,
) -> None:
    """Some rows are not clean (and fail_on_error is off): log why, and add those that only
    lose a bad value (``inserted`` rows went in already)."""
    flagged = st.table("eflagged")
    a = Args()
    records = edge_records(st, staged, plan, settings, a, values=False, existing=False)
    await conn.execute(
        f"CREATE TEMP TABLE {bare(flagged)} ON COMMIT DROP AS"
        f" SELECT * FROM {records} WHERE fatal OR mismatch",
        *a.values,
    )
    await log_row_errors(conn, st, staged, plan, settings, flagged)
    a = Args()
    only_values = f"s.rec IN (SELECT rec FROM {flagged} WHERE NOT fatal)"
    added = row_count(
        await conn.execute(
            _insert_edges_sql(st, staged, plan, settings, a, only_values, checked=True),
            *a.values,
        )
    )
    fatal: int = await conn.fetchval(f"SELECT count(*) FROM {flagged} WHERE fatal")
    if inserted + added + fatal != staged.rows:
        raise _NotClean  # a row left out for a reason not logged: take the careful path
    await report(conn, st, None, outcome)


def _insert_edges_sql(
    st: Staging,
    staged: Staged,
    plan: EdgePlan,
    settings: MergeSettings,
    a: Args,
    where: str,
    *,
    checked: bool = False,
) -> str:
    """INSERT of the staged edges passing ``where`` whose endpoints exist (no ON CONFLICT:
    a taken id raises, which costs nothing until it happens, where ON CONFLICT doubles the
    cost of the insert). The endpoints are semi-joins (a fifth cheaper than joins) and
    ``where`` applies above them, which keeps the planner's row estimate at the batch's size
    (below them, its guess of the filter's selectivity turns the joins into nested loops of
    index lookups)."""
    e = edge_columns(plan)
    props = edge_props(plan, settings, a, checked=checked)
    fs, ts, types = a(plan.from_space), a(plan.to_space), a(types_json(plan.props), "jsonb")
    return f"""INSERT INTO graph_edges
            (id, label, from_space, from_id, to_space, to_id, properties, property_types)
        SELECT {e["id"]}, {e["label"]}, {fs}, {e["from_id"]}, {ts}, {e["to_id"]}, {props}, {types}
        FROM (SELECT s.* FROM {trimmed(st, staged)}
              WHERE s.t{plan.from_field} IN (SELECT id FROM graph_vertices WHERE id_space = {fs})
                AND s.t{plan.to_field} IN (SELECT id FROM graph_vertices WHERE id_space = {ts})
              OFFSET 0) s
        WHERE {where}"""
