"""All SQL of the RDF quad store (table `quads`, migration 0004_rdf_store.sql).

Terms are strings in N-Triples syntax (`<iri>`, `_:label`, `"lex"`, `"lex"@lang`,
`"lex"^^<iri>`); rdf.py builds them and the reads return them unchanged. Like the loader's
other repositories, these functions take a connection and never open or commit a transaction:
:func:`insert_quads` must run inside the caller's ``conn.transaction()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from loadbay_platform.db import watched

Quad = tuple[str, str, str, str]  # subject, predicate, object, graph

STAGING_TABLE = "rdf_quad_staging"
# One per connection, emptied at every commit; IF NOT EXISTS because pooled connections keep
# their temporary tables between feeds.
CREATE_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS rdf_quad_staging (s text, p text, o text, g text)
ON COMMIT DELETE ROWS
"""
# DO NOTHING also skips a statement repeated within the batch. The ORDER BY makes concurrent
# feeds take the unique index's locks in one order, so overlapping batches wait for each
# other instead of deadlocking.
INSERT_FROM_STAGING = """
INSERT INTO quads (s, p, o, g)
SELECT s, p, o, g FROM rdf_quad_staging
ORDER BY s COLLATE "C", p COLLATE "C", o COLLATE "C", g COLLATE "C"
ON CONFLICT (spog) DO NOTHING
"""
# ON COMMIT empties the table too; this is for a caller that writes two batches in one transaction.
TRUNCATE_STAGING = "TRUNCATE rdf_quad_staging"
TRIPLES_BY_SUBJECT = """
SELECT s, p, o, g FROM quads
WHERE s = $1 AND ($2::text IS NULL OR g = $2)
ORDER BY p COLLATE "C", o COLLATE "C", g COLLATE "C"
LIMIT $3
"""
COUNT_QUADS = "SELECT count(*) FROM quads"


async def insert_quads(conn: asyncpg.Connection, quads: Sequence[Quad]) -> int:
    """Add `quads` (a bounded batch) to the store; returns how many were new. The others were
    duplicates of stored statements or of earlier ones in the batch."""
    if not quads:
        return 0
    await conn.execute(CREATE_STAGING)
    await watched(
        conn, conn.copy_records_to_table(STAGING_TABLE, records=quads, columns=("s", "p", "o", "g"))
    )
    status = await conn.execute(INSERT_FROM_STAGING)  # "INSERT 0 <rows>"
    await conn.execute(TRUNCATE_STAGING)
    return int(status.rsplit(" ", 1)[1])


def as_term(iri_or_term: str) -> str:
    """A term in N-Triples syntax; a bare IRI (``http://x``) is wrapped as ``<http://x>``."""
    if iri_or_term.startswith(("<", "_:", '"')):
        return iri_or_term
    return f"<{iri_or_term}>"


async def triples_by_subject(
    conn: asyncpg.Connection, subject: str, graph: str | None = None, limit: int = 1000
) -> list[dict[str, str]]:
    """The statements about `subject` (in `graph` if given), as ``{"s", "p", "o", "g"}`` dicts
    of N-Triples terms, ordered by predicate, object and graph. `subject` and `graph` are
    N-Triples terms or bare IRIs. A blank node label is the one the store gave it (loads scope
    labels per feed), as returned by an earlier read."""
    rows = await conn.fetch(
        TRIPLES_BY_SUBJECT, as_term(subject), as_term(graph) if graph else None, limit
    )
    return [dict(row) for row in rows]


async def count_quads(conn: asyncpg.Connection) -> int:
    """How many statements the store holds."""
    return int(await conn.fetchval(COUNT_QUADS))
