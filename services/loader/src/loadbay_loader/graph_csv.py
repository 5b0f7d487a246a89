"""Gremlin CSV (``format: csv``) and openCypher CSV (``format: opencypher``) feeds.

Python reads the header line, turns it into a typed column plan (:class:`VertexPlan` or
:class:`EdgePlan`, see graph_plans.py), and then only cuts the byte stream into batches of
about :data:`BATCH_BYTES` at record boundaries (a line break after an even number of quote
characters, which is how PostgreSQL splits CSV records too). Each batch is streamed unchanged
into ``COPY`` and merged set-based in its own transaction, so what loaded before an error stays,
memory stays at one batch, and ``cancelled()`` is checked between batches.

Only when COPY rejects a batch (an unterminated quote, a record with too few or too many
fields, bytes that are not UTF-8, or a ``\\.`` line, which PostgreSQL before 18 takes for the
end of the data) is the batch parsed here, record by record, with PostgreSQL's CSV rules: the
bad records become PARSING_ERRORs with their record number and the good ones are staged and
merged as usual. After an unterminated quote the parser resumes at the next line.

Header rules (Neptune's, see mission-anchors A6/A7). Gremlin: ``~id`` (required), ``~label``,
and for edges ``~from`` and ``~to`` (required), each at most once and case-sensitive; a file is
an edge file when it has ``~from`` or ``~to``. Properties are ``name:Type``,
``name:Type(single|set)``, ``name:Type[]`` or ``name:Type(set)[]`` (type and cardinality ignore
case, ``\\:`` escapes a colon in a name, a name alone is a String); ``(single)[]`` is an error,
and so are arrays and ``(set)`` in edge files. Default cardinality: set. openCypher: nodes have
``:ID`` or ``:ID(space)``, optionally ``name:ID`` to keep the id as a String property, and
``:LABEL``; relationships have ``:START_ID``/``:END_ID`` (optionally with an id space),
``:TYPE``, and ``:ID`` exactly when ``userProvidedEdgeIds`` is absent or true. No arrays, all
properties single-valued; ``updateSingleCardinalityProperties`` does not apply (Neptune does not
support it for openCypher) and is ignored. A node without a label gets ``vertex``, an edge
without a ``~label``/``:TYPE`` column gets ``edge``.

A header problem is one PARSING_ERROR (record 0) naming the file, and nothing of it loads.

Record numbers (``recordNum``) count CSV records after the header from 1, as COPY reads them: a
record with quoted line breaks is one record, a blank line inside the data takes a number but
is neither a record nor an error, blank lines at the end of the file are ignored. Where the
format page and the load page disagree or say nothing, this module and graph_plans.py say
what they chose: a blank ``~label`` cell (or one holding only ``;``) is a PARSING_ERROR rather
than the default label, which only applies when the column is absent; values are trimmed; see
graph_plans.py for values, duplicates and errors.
"""

from __future__ import annotations

import contextlib
import csv
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

from loadbay_loader import graph_edge_store, graph_staging_store, graph_vertex_store, limits
from loadbay_loader.feeds import (
    Chunks,
    ErrorSink,
    FeedCounts,
    FeedError,
    FeedResult,
    Format,
    LoadOptions,
)
from loadbay_loader.graph_plans import (
    BatchOutcome,
    EdgePlan,
    MergeSettings,
    Policy,
    PropertyColumn,
    VertexPlan,
)
from loadbay_loader.graph_staging_store import Staged, Staging
from loadbay_loader.tabular import prefetch

__all__ = [
    "BATCH_BYTES",
    "HeaderError",
    "feed_kind",
    "load_csv_feed",
    "load_opencypher_feed",
    "parse_header",
]

# A batch is cut at the first record boundary after this many bytes. Large batches make for
# few transactions and few index rebuilds (graph_index_store.py); no batch is held in memory.
BATCH_BYTES = 64 << 20
SLICE_BYTES = 1 << 20  # a batch COPY rejects is loaded again in slices this large
MAX_HEADER_BYTES = 1 << 20
# A line longer than limits.max_record_bytes ends the feed with a PARSING_ERROR (nothing past
# the limit is buffered); a quoted record spanning more than that many bytes of lines is taken
# as an unterminated quote.

Plan = VertexPlan | EdgePlan

GREMLIN_TYPES = {
    "bool": "Bool",
    "boolean": "Bool",
    "byte": "Byte",
    "short": "Short",
    "int": "Int",
    "long": "Long",
    "float": "Float",
    "double": "Double",
    "string": "String",
    "date": "Date",
    "datetime": "Date",
}
OPENCYPHER_TYPES = {
    **{k: v for k, v in GREMLIN_TYPES.items() if k not in ("date", "datetime")},
    "datetime": "DateTime",
    "char": "Char",
    "date": "Date",
    "localdate": "LocalDate",
    "localdatetime": "LocalDateTime",
    "duration": "Duration",
    "point": "Point",
}

_GREMLIN_SYSTEM = ("~id", "~label", "~from", "~to")
_GREMLIN_TYPE = re.compile(r"(?P<type>[A-Za-z]+)(?:\((?P<card>[A-Za-z]+)\))?(?P<array>\[\])?")
_LAST_COLON = re.compile(r"(?<!\\):(?!.*(?<!\\):)")
_CYPHER_SYSTEM = re.compile(
    r"(?P<name>.*):(?P<kw>ID|START_ID|END_ID|LABEL|TYPE)(?:\((?P<space>[^()]*)\))?"
)
_END_MARKER_LINE = re.compile(rb"[\r\n]\\\.[\r\n]")
_END_MARKER_AT_END = re.compile(rb"[\r\n]\\\.$")
# A space next to a delimiter, a line break or a quote: a field that may need trimming.
_EDGE_SPACE = re.compile(rb' [,\r\n"]|[,\r\n"] ')


class HeaderError(ValueError):
    """The header line cannot be loaded; the message says what to change."""


# --------------------------------------------------------------------------- headers


def _split_header_line(line: str) -> list[str]:
    line = line.removeprefix("\ufeff").rstrip("\r\n")
    return [name.strip() for name in next(csv.reader([line]), [])]


def feed_kind(header_line: str, fmt: Format) -> Literal["vertex", "edge"]:
    """Whether a feed holds vertices or edges, from its header line alone (the engine loads
    vertex files first). A header too broken to tell counts as a vertex file; loading it
    reports the problem."""
    names = _split_header_line(header_line)
    if fmt == "opencypher":
        for name in names:
            m = _CYPHER_SYSTEM.fullmatch(name)
            if m is not None and m["kw"] in ("START_ID", "END_ID", "TYPE"):
                return "edge"
        return "vertex"
    return "edge" if "~from" in names or "~to" in names else "vertex"


def _check_name(name: str, token: str) -> None:
    if not name:
        raise HeaderError(f"column {token!r} has no property name")
    if any(ch in name for ch in " \r\n\t"):
        raise HeaderError(f"column {token!r}: property names cannot hold spaces or line breaks")


def _gremlin_property(token: str, field: int, edge: bool) -> PropertyColumn:
    split = _LAST_COLON.search(token)
    raw_name, spec = (token[: split.start()], token[split.end() :]) if split else (token, "String")
    name = raw_name.replace("\\:", ":")
    _check_name(name, token)
    m = _GREMLIN_TYPE.fullmatch(spec)
    type_ = GREMLIN_TYPES.get(m["type"].lower()) if m else None
    if m is None or type_ is None:
        raise HeaderError(
            f"column {token!r}: unknown type {spec!r} (use Bool, Byte, Short, Int, Long, Float,"
            " Double, String or Date, optionally with (single) or (set) and [])"
        )
    card = (m["card"] or "set").lower()
    if card not in ("single", "set"):
        raise HeaderError(f"column {token!r}: cardinality must be single or set, not {m['card']!r}")
    array = m["array"] is not None
    if array and card == "single":
        raise HeaderError(f"column {token!r}: a single-cardinality property cannot be an array")
    if edge and (array or (m["card"] is not None and card == "set")):
        raise HeaderError(f"column {token!r}: edge properties are single-valued (no [] or (set))")
    return PropertyColumn(field, token, name, type_, array=array, single=edge or card == "single")


def _parse_gremlin(names: list[str]) -> Plan:
    system: dict[str, int] = {}
    props: list[PropertyColumn] = []
    edge = "~from" in names or "~to" in names
    for i, token in enumerate(names):
        if not token:
            raise HeaderError(f"column {i + 1} has an empty name")
        if token.startswith("~"):
            if token not in _GREMLIN_SYSTEM or (not edge and token in ("~from", "~to")):
                raise HeaderError(
                    f"unknown system column {token!r} (system columns: ~id, ~label, ~from, ~to)"
                )
            if token in system:
                raise HeaderError(f"system column {token!r} appears twice")
            system[token] = i
        else:
            props.append(_gremlin_property(token, i, edge))
    _check_unique(props)
    required = ("~id", "~from", "~to") if edge else ("~id",)
    missing = [t for t in required if t not in system]
    if missing:
        kind = "an edge" if edge else "a vertex"
        raise HeaderError(f"no {' or '.join(missing)} column (required in {kind} file)")
    if edge:
        return EdgePlan(
            width=len(names),
            id_field=system["~id"],
            id_header="~id",
            from_field=system["~from"],
            from_header="~from",
            from_space="",
            to_field=system["~to"],
            to_header="~to",
            to_space="",
            label_field=system.get("~label"),
            label_header="~label",
            props=tuple(props),
        )
    return VertexPlan(
        width=len(names),
        id_field=system["~id"],
        id_header="~id",
        id_space="",
        label_field=system.get("~label"),
        label_header="~label",
        props=tuple(props),
        label_required=True,
    )


def _check_unique(props: list[PropertyColumn]) -> None:
    seen: set[str] = set()
    for col in props:
        if col.name in seen:
            raise HeaderError(f"property {col.name!r} has two columns")
        seen.add(col.name)


def _cypher_property(token: str, field: int) -> PropertyColumn:
    name, colon, spec = token.rpartition(":")
    if not colon:
        name, spec = token, "String"
    _check_name(name, token)
    if spec.endswith("[]"):
        raise HeaderError(f"column {token!r}: openCypher CSV has no array types")
    type_ = OPENCYPHER_TYPES.get(spec.lower())
    if type_ is None:
        raise HeaderError(
            f"column {token!r}: unknown type {spec!r} (use Bool, Byte, Short, Int, Long, Float,"
            " Double, String, DateTime, or Char, Date, LocalDate, LocalDateTime, Duration, Point)"
        )
    return PropertyColumn(field, token, name, type_, single=True, date_epoch=type_ != "Date")


def _parse_opencypher(names: list[str], user_provided_edge_ids: bool | None) -> Plan:
    system: dict[str, tuple[int, str, str]] = {}  # keyword -> (field, token, name or space)
    props: list[PropertyColumn] = []
    for i, token in enumerate(names):
        if not token:
            raise HeaderError(f"column {i + 1} has an empty name")
        m = _CYPHER_SYSTEM.fullmatch(token)
        if m is None:
            props.append(_cypher_property(token, i))
            continue
        kw = m["kw"]
        if kw in system:
            raise HeaderError(f"system column :{kw} appears twice")
        space = m["space"]
        if space is not None and (kw not in ("ID", "START_ID", "END_ID") or not space.strip()):
            raise HeaderError(f"column {token!r}: only :ID, :START_ID and :END_ID take an id space")
        if m["name"] and kw != "ID":
            raise HeaderError(f"column {token!r}: only :ID can be stored as a property (name:ID)")
        system[kw] = (i, token, m["name"] or (space or ""))
        if kw == "ID" and m["name"]:
            _check_name(m["name"], token)
    _check_unique(props)
    edge = bool({"START_ID", "END_ID", "TYPE"} & system.keys())
    if not edge:
        if "ID" not in system:
            raise HeaderError("no :ID column (required in a node file)")
        field, token, _ = system["ID"]
        m = _CYPHER_SYSTEM.fullmatch(token)
        assert m is not None
        label = system.get("LABEL")
        return VertexPlan(
            width=len(names),
            id_field=field,
            id_header=token,
            id_space=(m["space"] or "").strip(),
            label_field=label[0] if label else None,
            label_header=label[1] if label else ":LABEL",
            props=tuple(props),
            label_required=False,
            id_property=m["name"] or None,
        )
    if "LABEL" in system:
        raise HeaderError(":LABEL belongs in node files; a relationship has one :TYPE")
    missing = [f":{k}" for k in ("START_ID", "END_ID") if k not in system]
    if missing:
        raise HeaderError(f"no {' or '.join(missing)} column (required in a relationship file)")
    ids = system.get("ID")
    if ids is not None and ids[2]:
        raise HeaderError(
            f"column {ids[1]!r}: a relationship id cannot be a property or have an id space"
        )
    if user_provided_edge_ids is False and ids is not None:
        raise HeaderError(
            "userProvidedEdgeIds is false, so relationship files must not have an :ID column"
        )
    if user_provided_edge_ids is not False and ids is None:
        raise HeaderError(
            "no :ID column: relationship files need one unless userProvidedEdgeIds is false"
        )
    start, end, type_ = system["START_ID"], system["END_ID"], system.get("TYPE")
    return EdgePlan(
        width=len(names),
        id_field=ids[0] if ids else None,
        id_header=":ID",
        from_field=start[0],
        from_header=start[1],
        from_space=start[2].strip(),
        to_field=end[0],
        to_header=end[1],
        to_space=end[2].strip(),
        label_field=type_[0] if type_ else None,
        label_header=":TYPE",
        props=tuple(props),
    )


def parse_header(names: list[str], options: LoadOptions) -> Plan:
    """The typed column plan of a header (already split into names), or HeaderError."""
    most = limits.current().max_columns
    if len(names) > most:
        raise HeaderError(
            f"{len(names)} columns: a header may have at most {most}"
            f" (LOADBAY_LOADER_MAX_COLUMNS; PostgreSQL tables take {limits.POSTGRES_MAX_COLUMNS})"
        )
    if options.format == "opencypher":
        return _parse_opencypher(names, options.user_provided_edge_ids)
    if options.format == "csv":
        return _parse_gremlin(names)
    raise ValueError(f"not a property-graph CSV format: {options.format!r}")


# --------------------------------------------------------------------------- byte stream


async def _without_trailing_breaks(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The stream minus the line breaks at its very end (a blank last line would otherwise be
    a record with too few fields)."""
    held = b""
    async for chunk in chunks:
        body = chunk.rstrip(b"\r\n")
        if body:
            yield held + body
            held = chunk[len(body) :]
        else:
            held += chunk


class _WholeLines:
    """The stream in chunks that end on a line break (but the last), so a batch never ends
    in the middle of a line. A line longer than `max_bytes` ends the stream early, with
    `overlong` set: at most that many bytes of it are ever held."""

    def __init__(self, stream: AsyncIterator[bytes], max_bytes: int) -> None:
        self._stream = stream
        self.max_bytes = max_bytes
        self.overlong = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        held: list[bytes] = []  # the start of a line that has not ended yet
        held_bytes = 0
        async for chunk in self._stream:
            first = chunk.find(b"\n")
            if held_bytes + (len(chunk) if first < 0 else first) > self.max_bytes:
                self.overlong = True
                return
            if first < 0:
                held.append(chunk)
                held_bytes += len(chunk)
                continue
            long_at = limits.long_line_start(chunk, first, self.max_bytes)
            last = chunk.rfind(b"\n") if long_at is None else long_at - 1
            held.append(chunk[: last + 1])
            yield b"".join(held)  # the lines before a long one still load
            if long_at is not None:
                self.overlong = True
                return
            held = [chunk[last + 1 :]] if last + 1 < len(chunk) else []
            held_bytes = len(chunk) - last - 1
        if held:
            yield b"".join(held)


async def _read_header(stream: AsyncIterator[bytes]) -> tuple[list[str], bytes, int]:
    """The header's names, the bytes read after the header line, and the offset of the data
    after the header line in the feed."""
    buffered = b""
    while (end := buffered.find(b"\n")) < 0:
        chunk = await anext(stream, None)
        if chunk is None:
            end = len(buffered)
            break
        buffered += chunk
        if len(buffered) > MAX_HEADER_BYTES and buffered.find(b"\n") < 0:
            raise HeaderError(f"no end of the header line in the first {MAX_HEADER_BYTES} bytes")
    line, rest = buffered[:end], buffered[end + 1 :]
    if not line.strip(b"\r\n\xef\xbb\xbf "):
        raise HeaderError("the file is empty: no header line")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HeaderError(f"the header line is not valid UTF-8 ({exc.reason})") from None
    return _split_header_line(text), rest, end + 1


@dataclass
class _Batch:
    """One batch of records, streamed to COPY by :attr:`source_iter`. Only a slow-path batch
    (``keep``) holds its bytes; a top-level one is read again from the feed if COPY rejects it.
    While streaming it notes whether any field may have spaces at its edges (otherwise the
    merge skips trimming) and whether a line is PostgreSQL's end-of-data marker ``\\.``."""

    start: int  # offset of its first byte in the data after the header line
    keep: bool
    size: int = 0
    pieces: list[bytes] = field(default_factory=list)
    source_iter: AsyncIterator[bytes] | None = None
    spaced: bool = False
    end_marker: bool = False
    _tail: bytes = b"\n"  # the last bytes seen, for patterns across pieces

    def see(self, buf: bytes) -> None:
        joined = self._tail + buf
        if not self.spaced and b" " in joined and _EDGE_SPACE.search(joined):
            self.spaced = True
        if not self.end_marker and b"\\." in joined and _END_MARKER_LINE.search(joined):
            self.end_marker = True
        self._tail = joined[-3:]
        self.size += len(buf)
        if self.keep:
            self.pieces.append(buf)

    def ended(self) -> None:
        """The batch's last byte is seen: a space or a marker may end the data."""
        self.spaced = self.spaced or self._tail.endswith(b" ")
        self.end_marker = self.end_marker or _END_MARKER_AT_END.search(self._tail) is not None

    async def drain(self) -> None:
        """Read whatever COPY left of the batch (after an error)."""
        if self.source_iter is not None:
            async for _ in self.source_iter:
                pass

    def data(self) -> bytes:
        return b"".join(self.pieces)


class _Batches:
    """Cuts the data after the header into batches ending on record boundaries."""

    def __init__(
        self, stream: AsyncIterator[bytes], head: bytes, batch_bytes: int, *, keep: bool = False
    ) -> None:
        self._stream = stream
        self._pending = head
        self._batch_bytes = batch_bytes
        self._keep = keep
        self._offset = 0
        self._eof = False

    async def next(self) -> _Batch | None:
        if not self._pending:
            if self._eof:
                return None
            chunk = await anext(self._stream, None)
            if chunk is None:
                self._eof = True
                return None
            self._pending = chunk
        batch = _Batch(self._offset, self._keep)
        batch.source_iter = self._pieces(batch)
        return batch

    async def _pieces(self, batch: _Batch) -> AsyncIterator[bytes]:
        size = parity = 0
        buf, self._pending = self._pending, b""
        while buf:
            cut: int | None = None
            if size + len(buf) >= self._batch_bytes:
                forced = size > self._batch_bytes + limits.current().max_record_bytes
                cut = _find_cut(buf, max(0, self._batch_bytes - size), parity, forced)
            if cut is not None:
                buf, self._pending = buf[:cut], buf[cut:]
            parity ^= buf.count(b'"') & 1
            size += len(buf)
            self._offset += len(buf)
            batch.see(buf)
            yield buf
            if cut is not None:
                batch.ended()
                return
            buf = await anext(self._stream, b"")
        batch.ended()
        self._eof = True


async def _reread(chunks: Chunks, start: int, length: int) -> AsyncIterator[bytes]:
    """``length`` bytes of the feed from offset ``start``, read again from the beginning."""
    source = chunks()
    skip, left = start, length
    try:
        async for chunk in source:
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            piece = chunk[skip : skip + left]
            skip = 0
            left -= len(piece)
            yield piece
            if not left:
                return
    finally:
        with contextlib.suppress(Exception):
            await source.aclose()  # type: ignore[attr-defined]


def _find_cut(buf: bytes, start: int, parity: int, forced: bool) -> int | None:
    """The offset just after the first line break at or after ``start`` that ends a record
    (an even number of quotes before it), or None."""
    pos = start
    parity ^= buf.count(b'"', 0, start) & 1
    while (nl := buf.find(b"\n", pos)) >= 0:
        parity ^= buf.count(b'"', pos, nl) & 1
        if parity == 0 or forced:
            return nl + 1
        pos = nl + 1
    return None


# --------------------------------------------------------------------------- slow path


def _record_spans(data: bytes) -> list[tuple[int, int, bool]]:
    """(start, end, terminated) of each record, by PostgreSQL's rule (a line break outside
    quotes ends a record). An unterminated quote is reported on its first line only, and
    reading resumes on the next line."""
    spans: list[tuple[int, int, bool]] = []
    pos, n = 0, len(data)
    while pos < n:
        end = pos
        parity = 0
        while True:
            nl = data.find(b"\n", end)
            stop = n if nl < 0 else nl
            parity ^= data.count(b'"', end, stop) & 1
            if parity == 0:
                spans.append((pos, stop, True))
                pos = stop + 1
                break
            if nl < 0:  # the quote never closes: report the record's first line, go on after it
                first = data.find(b"\n", pos)
                first = n if first < 0 else first
                spans.append((pos, first, False))
                pos = first + 1
                break
            end = nl + 1
    return spans


def _fields(text: str) -> list[str | None] | None:
    """The fields of one record with PostgreSQL's CSV rules (an unquoted empty field is None,
    ``""`` an empty string, a doubled quote inside quotes a quote); None if a quote is left open."""
    fields: list[str | None] = []
    buf: list[str] = []
    quoted = in_quote = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if in_quote:
            if ch == '"':
                if i + 1 < n and text[i + 1] == '"':
                    buf.append('"')
                    i += 1
                else:
                    in_quote = False
            else:
                buf.append(ch)
        elif ch == ",":
            fields.append("".join(buf) if buf or quoted else None)
            buf, quoted = [], False
        elif ch == '"':
            in_quote = quoted = True
        else:
            buf.append(ch)
        i += 1
    if in_quote:
        return None
    fields.append("".join(buf) if buf or quoted else None)
    return fields


def _parse_batch(
    data: bytes, width: int
) -> tuple[list[tuple[Any, ...]], list[tuple[int, str]], int]:
    """The slow path: (good records as (rec, fields...), (rec, message) of bad ones, number of
    record slots). Blank lines take a record number but are neither records nor errors."""
    records: list[tuple[Any, ...]] = []
    errors: list[tuple[int, str]] = []
    spans = _record_spans(data)
    for rec, (start, end, terminated) in enumerate(spans, start=1):
        raw = data[start:end]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not terminated:
            errors.append(
                (rec, "unterminated quoted field: a quote opened in this record is never closed")
            )
            continue
        if not raw:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(
                (rec, f"the record is not valid UTF-8 ({exc.reason} at byte {exc.start})")
            )
            continue
        if "\x00" in text:
            errors.append((rec, "the record holds a NUL character"))
            continue
        fields = _fields(text)
        if fields is None:
            errors.append(
                (rec, "unterminated quoted field: a quote opened in this record is never closed")
            )
        elif len(fields) != width:
            errors.append((rec, f"the record has {len(fields)} fields, the header has {width}"))
        else:
            records.append((rec, *fields))
    return records, errors, len(spans)


# --------------------------------------------------------------------------- loading


class _CopyRejected(Exception):
    """COPY refused the batch's bytes: load it in slices, and parse the bad ones in Python."""


@dataclass(frozen=True)
class _Feed:
    """What every batch of one feed is loaded with."""

    conn: asyncpg.Connection
    st: Staging
    plan: Plan
    settings: MergeSettings
    reread: Callable[[int, int], AsyncIterator[bytes]]  # (start, length) of the data, again


async def _merge(feed: _Feed, staged: Staged) -> BatchOutcome:
    if isinstance(feed.plan, VertexPlan):
        return await graph_vertex_store.merge_vertices(
            feed.conn, feed.st, feed.plan, feed.settings, staged
        )
    return await graph_edge_store.merge_edges(feed.conn, feed.st, feed.plan, feed.settings, staged)


async def _load_batch(feed: _Feed, batch: _Batch) -> tuple[BatchOutcome, int]:
    """Load one batch in one transaction; returns its outcome and number of record slots.
    A batch that COPY rejects is read again and loaded in slices of SLICE_BYTES, each in its
    own transaction; a rejected slice is parsed here, record by record."""
    assert batch.source_iter is not None
    conn = feed.conn
    try:
        async with conn.transaction():
            await graph_staging_store.begin_batch(conn)
            try:
                rows = await graph_staging_store.stage_copy(conn, feed.st, batch.source_iter)
            except asyncpg.DataError as exc:
                raise _CopyRejected from exc
            await batch.drain()
            if batch.end_marker:
                raise _CopyRejected
            # what the batch's bytes held is known once they are all read
            staged = Staged(rows, parse_errors=False, spaced=batch.spaced)
            return await _merge(feed, staged), rows
    except _CopyRejected:
        pass
    await batch.drain()
    if not batch.keep:
        return await _load_slices(feed, batch)
    records, parse_errors, slots = _parse_batch(batch.data(), feed.plan.width)
    async with conn.transaction():
        await graph_staging_store.begin_batch(conn)
        staged = await graph_staging_store.stage_records(conn, feed.st, records, parse_errors)
        outcome = await _merge(feed, staged)
    return outcome, slots


async def _load_slices(feed: _Feed, batch: _Batch) -> tuple[BatchOutcome, int]:
    total = BatchOutcome()
    slots = 0
    data = feed.reread(batch.start, batch.size)
    try:
        slices = _Batches(data, b"", SLICE_BYTES, keep=True)
        while (piece := await slices.next()) is not None:
            outcome, n = await _load_batch(feed, piece)
            total.errors.extend(
                (slots + rec, code, message) for rec, code, message in outcome.errors
            )
            _add(total.counts, outcome.counts)
            slots += n
            if outcome.stopped:
                total.stopped = True
                break
    finally:
        with contextlib.suppress(Exception):
            await data.aclose()  # type: ignore[attr-defined]
    return total, slots


def _add(total: FeedCounts, part: FeedCounts) -> None:
    total.total_records += part.total_records
    total.total_duplicates += part.total_duplicates
    total.parsing_errors += part.parsing_errors
    total.datatype_mismatch_errors += part.datatype_mismatch_errors
    total.insert_errors += part.insert_errors


async def _load_feed(
    pool: asyncpg.Pool,
    chunks: Chunks,
    *,
    uri: str,
    options: LoadOptions,
    errors: ErrorSink,
    cancelled: Callable[[], Awaitable[bool]],
) -> FeedResult:
    result = FeedResult()
    counts = result.counts
    max_record = limits.current().max_record_bytes
    fetched = prefetch(chunks())
    lines = _WholeLines(_without_trailing_breaks(fetched), max_record)
    stream = aiter(lines)
    try:
        try:
            try:
                names, head, data_offset = await _read_header(stream)
            except HeaderError:
                if lines.overlong:
                    raise HeaderError(
                        f"no end of the header line in the first {max_record} bytes"
                    ) from None
                raise
            plan = parse_header(names, options)
        except HeaderError as exc:
            await errors.add(FeedError("PARSING_ERROR", f"{uri}: header: {exc}", uri, 0))
            counts.parsing_errors += 1
            result.stopped_on_error = options.fail_on_error
            return result
        if options.format == "opencypher":
            policy: Policy = "keep"
        else:
            policy = "replace" if options.update_single_cardinality_properties else "error"
        settings = MergeSettings(policy, options.fail_on_error, options.allow_empty_strings)
        batches = _Batches(stream, head, BATCH_BYTES)
        base = 0

        def reread(start: int, length: int) -> AsyncIterator[bytes]:
            return _reread(chunks, data_offset + start, length)

        async with pool.acquire() as conn:
            st = await graph_staging_store.create_staging(conn, plan.width)
            feed = _Feed(conn, st, plan, settings, reread)
            try:
                while not await cancelled() and (batch := await batches.next()) is not None:
                    outcome, slots = await _load_batch(feed, batch)
                    for rec, code, message in outcome.errors:
                        await errors.add(FeedError(code, message, uri, base + rec))
                    _add(counts, outcome.counts)
                    base += slots
                    if outcome.stopped:
                        result.stopped_on_error = True
                        break
                else:
                    if lines.overlong and not await cancelled():
                        message = (
                            f"{uri}: record {base + 1} has a line longer than {max_record} bytes"
                            " (LOADBAY_LOADER_MAX_RECORD_BYTES); the rest of the file is not read"
                        )
                        await errors.add(FeedError("PARSING_ERROR", message, uri, base + 1))
                        counts.parsing_errors += 1
                        result.stopped_on_error = options.fail_on_error
            finally:
                await graph_staging_store.drop_staging(conn, st)
    finally:
        for iterator in (stream, fetched):
            with contextlib.suppress(Exception):
                await iterator.aclose()  # type: ignore[attr-defined]
    return result


async def load_csv_feed(
    pool: asyncpg.Pool,
    chunks: Chunks,
    *,
    uri: str,
    options: LoadOptions,
    errors: ErrorSink,
    cancelled: Callable[[], Awaitable[bool]],
) -> FeedResult:
    """Load one Gremlin CSV feed (vertex or edge file) into the graph store."""
    return await _load_feed(
        pool, chunks, uri=uri, options=options, errors=errors, cancelled=cancelled
    )


async def load_opencypher_feed(
    pool: asyncpg.Pool,
    chunks: Chunks,
    *,
    uri: str,
    options: LoadOptions,
    errors: ErrorSink,
    cancelled: Callable[[], Awaitable[bool]],
) -> FeedResult:
    """Load one openCypher CSV feed (node or relationship file) into the graph store."""
    return await _load_feed(
        pool, chunks, uri=uri, options=options, errors=errors, cancelled=cancelled
    )
