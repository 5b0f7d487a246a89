"""What the bulk-loader job engine and the format loaders agree on.

A *feed* is one object of a load's source (Neptune's word). The job engine (graph_loads.py)
lists the source, orders the feeds (vertex files before edge files), and hands each to the
loader of its format (csv_feed.py for `csv` and `opencypher`, rdf.py for the RDF formats),
which streams it into the graph store and reports counts and errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import asyncpg

Format = Literal["csv", "opencypher", "ntriples", "nquads", "rdfxml", "turtle"]
FeedKind = Literal["vertex", "edge", "rdf"]

# Neptune's error-log codes (errorLogs[].errorCode).
ErrorCode = Literal[
    "PARSING_ERROR",
    "S3_ACCESS_DENIED_ERROR",
    "FROM_OR_TO_VERTEX_ARE_MISSING",
    "ID_ASSIGNED_TO_MULTIPLE_EDGES",
    "SINGLE_CARDINALITY_VIOLATION",
    "FILE_MODIFICATION_OR_DELETION_ERROR",
    "OUT_OF_MEMORY_ERROR",
    "INTERNAL_ERROR",
]

DEFAULT_NAMED_GRAPH = "https://aws.amazon.com/neptune/vocab/v01/DefaultNamedGraph"
DEFAULT_BASE_URI = "https://aws.amazon.com/neptune/default"


@dataclass(frozen=True)
class LoadOptions:
    """The request fields that change how a feed is parsed and merged."""

    format: Format
    fail_on_error: bool = True
    update_single_cardinality_properties: bool = False
    allow_empty_strings: bool = False
    user_provided_edge_ids: bool | None = None  # opencypher: None = absent (treated as True)
    named_graph_uri: str = DEFAULT_NAMED_GRAPH
    base_uri: str = DEFAULT_BASE_URI


@dataclass(frozen=True)
class FeedError:
    code: ErrorCode
    message: str  # a person can act on it: what, and where in the record
    file_name: str  # the feed's full URI, s3://bucket/key
    record_num: int  # 1-based record (data line) number in the file; 0 if not known


@dataclass
class FeedCounts:
    """Neptune's counters. `total_records` counts one record per label or property value
    (and per RDF statement), not per line; duplicates are counted the same way."""

    total_records: int = 0
    total_duplicates: int = 0
    parsing_errors: int = 0
    datatype_mismatch_errors: int = 0
    insert_errors: int = 0


class ErrorSink(Protocol):
    async def add(self, error: FeedError) -> None:
        """Record one error (the engine keeps the first 10,000 per load)."""


@dataclass
class FeedResult:
    counts: FeedCounts = field(default_factory=FeedCounts)
    # True when fail_on_error stopped the feed at its first error (what loaded before stays).
    stopped_on_error: bool = False


Chunks = Callable[[], AsyncIterator[bytes]]  # opens the feed's (decompressed) bytes anew


class FeedLoader(Protocol):
    async def __call__(
        self,
        pool: asyncpg.Pool,
        chunks: Chunks,
        *,
        uri: str,
        options: LoadOptions,
        errors: ErrorSink,
        cancelled: Callable[[], Awaitable[bool]],
    ) -> FeedResult:
        """Load one feed into the graph store; commit as it goes (a load is not atomic in
        Neptune: with fail_on_error, what loaded before the first error stays). Check
        `cancelled()` between batches and return early when it says True."""
        ...
