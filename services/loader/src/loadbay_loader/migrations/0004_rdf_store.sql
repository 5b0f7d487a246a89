-- The RDF quad store that the ntriples, nquads, rdfxml and turtle feeds load (rdf_store.py).
-- Every term is kept in N-Triples syntax (`<iri>`, `_:label`, `"lex"@lang`, `"lex"^^<iri>`),
-- so a read gives back exactly what was loaded. The graph is never NULL: statements without
-- one go to the load's namedGraphUri.
CREATE TABLE quads (
    s text NOT NULL,
    p text NOT NULL,
    o text NOT NULL,
    g text NOT NULL,
    -- A statement is stored once: (s, p, o, g) is unique. A btree entry holds at most about
    -- 2.7 kB and literals are often longer, so the key is a 128-bit digest of the four terms
    -- (joined by a newline, which no N-Triples term contains, so the join is unambiguous).
    spog uuid GENERATED ALWAYS AS (md5(s || E'\n' || p || E'\n' || o || E'\n' || g)::uuid) STORED,
    PRIMARY KEY (spog)
);
-- Reads by subject (the API's triples_by_subject). A hash index has no entry-size limit and
-- equality is all the read needs.
CREATE INDEX quads_by_subject ON quads USING hash (s);
