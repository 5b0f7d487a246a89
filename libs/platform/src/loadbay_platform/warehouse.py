"""The warehouse is one namespace: which PostgreSQL schema names belong to whom.

Reload domains, distribution client workspaces, the graph store and the services' own schemas
share one database, so each kind owns a part of the schema names and no kind may take
another's:

- ``loadbay_<service>``: a service's own schema (the graph and RDF stores live in the loader's,
  ``loadbay_loader``);
- ``ws_<data product>_<client id>``: a distribution client workspace;
- ``pg_*``, ``information_schema``, ``public``: PostgreSQL's own;
- anything else: a reload domain.

The loader also records, in its own schema, which table it created for which dataset or
workspace, and never drops or replaces a table it did not create for that owner.
"""

from __future__ import annotations

import uuid

SERVICE_PREFIX = "loadbay_"
WORKSPACE_PREFIX = "ws_"
GRAPH_STORE_SCHEMA = "loadbay_loader"
MAX_IDENTIFIER = 63

# name -> what it is reserved for (the reason a person reads in a 409)
RESERVED_NAMES = {
    "public": "PostgreSQL's default schema",
    "information_schema": "PostgreSQL's catalog",
}
RESERVED_PREFIXES = {
    "pg_": "PostgreSQL's system schemas (pg_*)",
    SERVICE_PREFIX: (
        f"the loadbay services' own schemas ({SERVICE_PREFIX}<service>; the graph store is in"
        f" {GRAPH_STORE_SCHEMA})"
    ),
    WORKSPACE_PREFIX: f"distribution client workspaces ({WORKSPACE_PREFIX}<product>_<client id>)",
}


def reserved_for(schema: str) -> str | None:
    """What `schema` is reserved for, or None if a reload domain may use it."""
    if schema in RESERVED_NAMES:
        return RESERVED_NAMES[schema]
    for prefix, owner in RESERVED_PREFIXES.items():
        if schema.startswith(prefix):
            return owner
    return None


def domain_problem(domain: str) -> str | None:
    """Why a reload domain may not be called `domain` (None: it may)."""
    owner = reserved_for(domain)
    if owner is None:
        return None
    return (
        f"domain {domain!r} is reserved for {owner}: a reload domain may not start with"
        f" {', '.join(RESERVED_PREFIXES)} or be {' or '.join(RESERVED_NAMES)}; choose another name"
    )


def workspace_schema(product: str, client_id: str) -> str:
    """The schema of a client workspace: ``ws_<product>_<client id>``.

    Readable, but not unique by construction: product ``a_b`` with client ``c`` and product
    ``a`` with client ``b_c`` both give ``ws_a_b_c``. The distribution service therefore
    refuses (409) a workspace whose schema another workspace has. Long or mixed-case client ids
    get a hash of product and client id, so two of them cannot collide once lowercased or cut.
    """
    base = f"{WORKSPACE_PREFIX}{product}_{client_id.lower()}"
    if len(base) <= MAX_IDENTIFIER and client_id == client_id.lower():
        return base
    digest = uuid.uuid5(uuid.NAMESPACE_OID, f"{product}\x00{client_id}").hex[:8]
    return f"{base[:50]}_{digest}"
