-- The property graph that the `csv` (Gremlin) and `opencypher` feeds load (graph_store.py).
--
-- Identifiers, labels and property names use the "C" collation: byte order is what Neptune
-- compares, and it keeps the hot unique indexes off the locale's slow comparisons.
-- There are no foreign keys: the loader checks edge endpoints itself, set-based, per batch
-- (FROM_OR_TO_VERTEX_ARE_MISSING), and per-row FK triggers would cost more than the load.
--
-- Property values are jsonb with the declared type beside them:
--   Bool -> true/false; Byte, Short, Int, Long -> integer; Float, Double -> number, or the
--   strings "NaN", "Infinity", "-Infinity" (JSON has no such numbers); String and
--   openCypher's auto-cast types (Char, Date, LocalDate, LocalDateTime, Duration, Point) ->
--   string, verbatim; Gremlin Date/DateTime and openCypher DateTime -> integer milliseconds
--   since 1970-01-01T00:00:00Z (a value with no zone is read as UTC).

-- A vertex (openCypher: a node). Gremlin vertices live in the id space ''; openCypher
-- nodes in the id space of their `:ID(space)` column ('' without one).
CREATE TABLE graph_vertices (
    id_space text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    PRIMARY KEY (id_space, id)
);

-- One row per (vertex, label): a label is one loader record, and a duplicate is a conflict.
CREATE TABLE graph_vertex_labels (
    id_space text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    label text COLLATE "C" NOT NULL,
    PRIMARY KEY (id_space, id, label)
);
CREATE INDEX graph_vertex_labels_by_label ON graph_vertex_labels (label);

-- One row per (vertex, property, value): set cardinality is the natural shape, single
-- cardinality is "at most one row per (vertex, name)", which the loader enforces. The key
-- holds an md5 of the value rather than the value, so a long string cannot overflow the
-- btree's row limit.
CREATE TABLE graph_vertex_properties (
    id_space text COLLATE "C" NOT NULL,
    vertex_id text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    type text NOT NULL,
    value jsonb NOT NULL,
    value_key uuid GENERATED ALWAYS AS (md5(value::text)::uuid) STORED,
    PRIMARY KEY (id_space, vertex_id, name, value_key)
);

-- An edge (openCypher: a relationship). Edge properties are single-valued, so they sit in
-- one jsonb object; `property_types` maps each property name to its declared type (it may
-- name columns of the edge's file that were blank on this edge).
CREATE TABLE graph_edges (
    id text COLLATE "C" PRIMARY KEY,
    label text COLLATE "C" NOT NULL,
    from_space text COLLATE "C" NOT NULL,
    from_id text COLLATE "C" NOT NULL,
    to_space text COLLATE "C" NOT NULL,
    to_id text COLLATE "C" NOT NULL,
    properties jsonb NOT NULL,
    property_types jsonb NOT NULL
);
