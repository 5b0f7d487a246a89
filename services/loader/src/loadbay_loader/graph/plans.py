"""What a property-graph feed is loaded as: the typed column plans of its header, the merge
settings of a load, and a batch's outcome. No SQL here; the *_store.py modules hold it.

Rules applied here (the parser turns headers into a :class:`VertexPlan` / :class:`EdgePlan`):

- Every field is trimmed of spaces (the format ignores spaces around delimiters; after COPY a
  quoted field's edge spaces cannot be told apart, so they go too). A blank field is no value;
  ``""`` is an empty string for String-like types when ``allowEmptyStrings`` is set and no
  value otherwise (the load page's rule; the format page calls it a value, which we read as
  the allowEmptyStrings case). An empty id (``""``) is a valid id, a blank one is an error.
- Types: Bool is true when the text is ``true`` in any case, false otherwise; Byte, Short,
  Int, Long are decimal integers in range (no hex, no ``_``); Float and Double are decimal or
  scientific numbers, ``NaN`` or ``[+-]Infinity`` as Java writes them (``inf`` and values out
  of the type's range are errors); dates are ``yyyy-MM-dd`` optionally followed by
  ``THH:mm``, ``:ss``, a fraction and ``Z`` or an offset (a value without a zone is UTC),
  stored as epoch milliseconds. Arrays split on ``;`` not preceded by ``\\`` and unescape
  ``\\;``; empty elements are dropped.
- Records (Neptune's counting): a vertex row is one record per label and per property value, an
  edge row one record for the edge and one per property value. A row that cannot be loaded at
  all (blank id, missing endpoint, malformed CSV) counts as one record. A record that changes
  nothing already loaded is a duplicate.
- Errors: a bad value loses that value only (``datatypeMismatchErrors``); a bad row loses the
  row. With ``fail_on_error`` the batch keeps only the rows before the first error (by record
  number), reports the errors of that record, counts it as one attempted record, and stops.
- Single cardinality (Gremlin ``(single)`` vertex properties and all edge properties): a value
  that differs from the one already there (loaded before, or earlier in the feed) is a
  SINGLE_CARDINALITY_VIOLATION; with ``updateSingleCardinalityProperties`` the last value in
  record order replaces it. openCypher (policy ``keep``) keeps the first value silently and
  counts the others as duplicates, as Neptune never updates openCypher properties.
- An edge id already used with another label or other endpoints is ID_ASSIGNED_TO_MULTIPLE_EDGES
  (both formats: reusing an id for another relationship is a data error, not a duplicate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from loadbay_loader.graph.feeds import ErrorCode, FeedCounts

Policy = Literal["error", "replace", "keep"]

VERTEX_LABEL = "vertex"  # the label of a vertex written without one (TinkerPop's default)
EDGE_LABEL = "edge"
MAX_KEY_BYTES = 1024  # ids and labels are index keys: longer ones are parse errors
MAX_ERRORS_PER_BATCH = 10_000  # error details fetched per batch (the engine keeps 10,000)
NO_LIMIT = 2**62

INTEGER_TYPES = {"Byte": (-128, 127), "Short": (-32768, 32767), "Int": (-(2**31), 2**31 - 1)}
FLOAT_TYPES = {"Float": "float4", "Double": "float8"}
DATE_TYPES = ("Date", "DateTime")  # stored as epoch milliseconds
AUTO_CAST_TYPES = ("Char", "Date", "LocalDate", "LocalDateTime", "Duration", "Point")  # openCypher
STRING_TYPES = ("String", "Char", "LocalDate", "LocalDateTime", "Duration", "Point")


@dataclass(frozen=True)
class PropertyColumn:
    """One property column of a feed: where it is, what it is called and typed."""

    field: int  # 0-based position in the CSV record
    header: str  # the header token as written, for messages
    name: str
    type: str  # canonical: Bool Byte Short Int Long Float Double String Date DateTime Char ...
    array: bool = False
    single: bool = False  # single cardinality (always, for edges and openCypher)
    date_epoch: bool = True  # Date holds epoch ms (Gremlin); False: openCypher's auto-cast Date


@dataclass(frozen=True)
class VertexPlan:
    width: int
    id_field: int
    id_header: str
    id_space: str
    label_field: int | None
    label_header: str
    props: tuple[PropertyColumn, ...]
    label_required: bool  # Gremlin: a blank ~label is an error; openCypher: the default label
    id_property: str | None = None  # openCypher `name:ID`: the id is also this String property


@dataclass(frozen=True)
class EdgePlan:
    width: int
    id_field: int | None  # None: the loader generates ids (openCypher userProvidedEdgeIds=false)
    id_header: str
    from_field: int
    from_header: str
    from_space: str
    to_field: int
    to_header: str
    to_space: str
    label_field: int | None
    label_header: str
    props: tuple[PropertyColumn, ...]


@dataclass(frozen=True)
class MergeSettings:
    policy: Policy
    fail_on_error: bool
    allow_empty_strings: bool


@dataclass
class BatchOutcome:
    counts: FeedCounts = field(default_factory=FeedCounts)
    # (record number within the batch, code, message), in record order, at most
    # MAX_ERRORS_PER_BATCH of them (the counters count them all)
    errors: list[tuple[int, ErrorCode, str]] = field(default_factory=list)
    stopped: bool = False  # fail_on_error met an error: only the records before it loaded
