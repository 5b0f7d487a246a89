"""A PostgreSQL server of a test module's own (the same wheel as the stack's; see pgembed.py)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from loadbay_cli.pgembed import EmbeddedPostgres, flavor_from_env


@contextlib.contextmanager
def own_postgres(prefix: str) -> Iterator[str]:
    """Start a server on a new data dir and a free port; yield the URL of database `postgres`
    over its unix socket; stop it (by PID) and delete the data dir."""
    # Not under pytest's basetemp: run as root, PostgreSQL runs as its own user, which must
    # traverse the parents, and a pytest starting meanwhile resets /tmp/pytest-of-<user> to 0700.
    parent = Path(tempfile.mkdtemp(prefix=prefix))
    server = EmbeddedPostgres(parent / "pgdata", flavor_from_env())
    try:
        server.start()
        yield server.socket_url("postgres")
    finally:
        server.stop()
        shutil.rmtree(parent, ignore_errors=True)
