"""Reads of the property-graph store: a vertex or an edge by id, counts by label."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg

from loadbay_loader.graph.plans import DATE_TYPES, FLOAT_TYPES


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
