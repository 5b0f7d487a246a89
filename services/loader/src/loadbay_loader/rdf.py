"""RDF feeds (`ntriples`, `nquads`, `rdfxml`, `turtle`) into the quad store (rdf_store.py).

:func:`load_rdf_feed` is the :class:`~loadbay_loader.feeds.FeedLoader` for the four RDF formats.
Every format streams: memory stays flat whatever the file size, statements are written in
bounded batches, each in its own transaction (a Neptune load is not atomic: with failOnError,
what loaded before the first error stays), and ``cancelled()`` is asked between batches.

- **N-Triples and N-Quads**, here: lines are read from the feed's chunks in batches of
  :data:`BATCH_LINES`, and each line is parsed on its own by rdflib's N-Quads line grammar
  (``NQuadsParser.parseline``), checked where rdflib is lax, so an error names its line and
  the next line goes on without failOnError. A line longer than ``max_record_bytes`` is a
  parsing error and is never buffered. A batch is parsed in a worker thread while the previous
  one is written.
- **Turtle and RDF/XML**: pyoxigraph parses them as they stream (rdf_documents.py). A syntax
  error ends the feed, with its line.

Statements without a graph (all triples, N-Quads lines without one) go to
``options.named_graph_uri``; ``options.base_uri`` resolves relative IRIs in Turtle and RDF/XML.
Input is UTF-8 (a line or document that is not is a parsing error); text is stored as written,
with no Unicode normalization, and ``\\uXXXX`` escapes are decoded.

Terms are stored in N-Triples syntax. Literals keep their lexical form (``"01"^^xsd:integer``
stays ``01``), lose an explicit ``^^xsd:string`` (the same literal in RDF 1.1) and have their
language tag lowercased (tags compare case-insensitively), so equal statements are stored once.
Blank node labels get a prefix unique to the feed: the same label in two files is two nodes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import rdflib
from rdflib.exceptions import ParserError
from rdflib.plugins.parsers.nquads import NQuadsParser
from rdflib.plugins.parsers.ntriples import r_literal, r_tail, r_uriref, unquote

from loadbay_loader import limits, rdf_documents, rdf_store
from loadbay_loader.feeds import (
    Chunks,
    ErrorCode,
    ErrorSink,
    FeedError,
    FeedResult,
    LoadOptions,
)
from loadbay_loader.rdf_terms import BadStatement, iri_term, literal_term

__all__ = ["BATCH_LINES", "load_rdf_feed"]

BATCH_LINES = 10_000  # lines (or statements, for documents) per transaction
# A line longer than limits.max_record_bytes is a parsing error, and is not buffered.

# rdflib rewrites typed literals' lexical forms by default ("01"^^xsd:integer becomes "1");
# Neptune stores them as written. Process-wide; only the N-Triples line parser uses rdflib.
rdflib.NORMALIZE_LITERALS = False


class _QuietTerms(logging.Filter):
    """rdflib logs a warning, with a traceback, for each ill-typed literal ("x"^^xsd:int, stored
    as written) and each invalid IRI (which becomes our PARSING_ERROR): one per value would
    flood the logs of a large load."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not message.startswith("Failed to convert Literal lexical form") and (
            "does not look like a valid URI" not in message
        )


logging.getLogger("rdflib.term").addFilter(_QuietTerms())

Quad = rdf_store.Quad

# ---------------------------------------------------------------------------- terms

_IRI_ESCAPES = re.compile(r"(?:[^\\]|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8})*")
_STRING_ESCAPES = re.compile(r"""(?:[^\\]|\\[tbnrf"'\\]|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8})*""")
# BLANK_NODE_LABEL of the N-Triples/Turtle grammars (without the colon that rdflib allows).
_PN_CHARS_U = (
    "A-Za-z_\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_PN_CHARS = _PN_CHARS_U + "\\-0-9\u00b7\u0300-\u036f\u203f-\u2040"
_BNODE = re.compile(f"_:([{_PN_CHARS_U}0-9](?:[{_PN_CHARS}.]*[{_PN_CHARS}])?)")


# ---------------------------------------------------------------------------- N-Triples, N-Quads


class _Capture:
    """Stands in for the rdflib Dataset that ``NQuadsParser.parseline`` adds a statement to."""

    def __init__(self, graphs_allowed: bool) -> None:
        self.graphs_allowed = graphs_allowed
        self.graph: str | None = None
        self.statement: tuple[str, str, str, str | None] | None = None

    @property
    def default_context(self) -> _Capture:
        self.graph = None
        return self

    def get_context(self, graph: str) -> _Capture:
        if not self.graphs_allowed:
            raise ParserError("a graph label after the object: this is N-Quads, not N-Triples")
        self.graph = graph
        return self

    def add(self, triple: tuple[str, str, str]) -> None:
        self.statement = (*triple, self.graph)


_EXPECTED = {
    r_tail.pattern: "'.' ending the statement",
    r_uriref.pattern: "an absolute IRI",
    r_literal.pattern: "a closed string literal",
}


class LineParser(NQuadsParser):
    """rdflib's N-Quads line grammar, one line at a time, for N-Triples too (its N-Triples
    parser wrongly needs whitespace between terms). The term methods are overridden to return
    terms in N-Triples syntax instead of rdflib nodes (no rdflib Literal: no lexical
    normalization, no per-value conversion cost) and to check what rdflib's lax patterns let
    through: escapes, IRI characters, blank node labels. Blank nodes get the feed's prefix
    without a growing label map."""

    def __init__(self, *, graphs: bool, bnode_prefix: str) -> None:
        super().__init__()
        self._capture = _Capture(graphs)
        self.sink = self._capture  # type: ignore[assignment]
        self._bnode_prefix = bnode_prefix

    def statement(self, line: str) -> tuple[str, str, str, str | None] | None:
        """The statement on `line`; None for a blank or comment line. Raises BadStatement."""
        self.line = line
        self._capture.statement = None
        try:
            self.parseline()
        except (ParserError, ValueError) as exc:  # ValueError: chr() of an escape > U+10FFFF
            message = str(exc)
            if "found:" not in message:  # say where: self.line is what was left unparsed
                message = f"{message}, found: {_excerpt(self.line or '', 40)}"
            raise BadStatement(message) from exc
        return self._capture.statement

    def eat(self, pattern: re.Pattern[str]) -> re.Match[str]:
        match = pattern.match(self.line or "")
        if not match:
            expected = _EXPECTED.get(pattern.pattern, pattern.pattern)
            raise ParserError(f"expected {expected}, found: {_excerpt(self.line or '', 40)}")
        self.line = (self.line or "")[match.end() :]
        return match

    def uriref(self) -> str | Literal[False]:  # type: ignore[override]
        if not self.peek("<"):
            return False
        return iri_term(_unescaped_iri(self.eat(r_uriref).group(1)))

    def nodeid(self, bnode_context: Any = None) -> str | Literal[False]:  # type: ignore[override]
        if not self.peek("_"):
            return False
        match = _BNODE.match(self.line or "")
        if not match:
            raise ParserError(f"not a blank node label: {_excerpt(self.line or '', 40)}")
        self.line = (self.line or "")[match.end() :]
        return f"_:{self._bnode_prefix}{match.group(1)}"

    def literal(self) -> str | Literal[False]:  # type: ignore[override]
        if not self.peek('"'):
            return False
        lexical, language, datatype = self.eat(r_literal).groups()
        if "\\" in lexical:
            if not _STRING_ESCAPES.fullmatch(lexical):
                raise ParserError(f'not a valid escape in the string "{_excerpt(lexical, 40)}"')
            lexical = unquote(lexical)
        return literal_term(lexical, language, datatype and _unescaped_iri(datatype))


def _unescaped_iri(raw: str) -> str:
    if "\\" not in raw:
        return raw
    if not _IRI_ESCAPES.fullmatch(raw):
        raise ParserError(f"only \\u and \\U escapes are allowed in an IRI: <{raw}>")
    return unquote(raw)


@dataclass
class _ParsedBatch:
    quads: list[Quad]
    errors: list[tuple[int, str]]  # (line number, message)


def _parse_lines(
    parser: LineParser,
    lines: list[tuple[int, bytes | None]],
    default_graph: str,
    stop_at_error: bool,
    max_bytes: int,
) -> _ParsedBatch:
    batch = _ParsedBatch([], [])
    for number, raw in lines:
        try:
            if raw is None or len(raw) > max_bytes:
                raise BadStatement(
                    f"line longer than {max_bytes} bytes (LOADBAY_LOADER_MAX_RECORD_BYTES)"
                )
            text = _decode_line(raw, first=number == 1)
            # N-Triples also ends a line at a lone CR.
            for part in text.split("\r") if "\r" in text else (text,):
                statement = parser.statement(part)
                if statement is not None:
                    s, p, o, g = statement
                    batch.quads.append((s, p, o, g or default_graph))
        except BadStatement as exc:
            batch.errors.append((number, str(exc)))
            if stop_at_error:  # the quads parsed before the bad line still load
                break
    return batch


def _decode_line(raw: bytes, *, first: bool) -> str:
    try:
        return raw.decode("utf-8-sig" if first else "utf-8").removesuffix("\r")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{raw[exc.start]:02X} at byte {exc.start + 1}"
        raise BadStatement(f"not UTF-8: {where}") from exc


async def _line_batches(
    chunks: AsyncIterator[bytes], max_bytes: int
) -> AsyncIterator[list[tuple[int, bytes | None]]]:
    """The feed's lines, numbered from 1, without their LF, in lists of BATCH_LINES. A line
    longer than `max_bytes` comes as None (and is not kept)."""
    batch: list[tuple[int, bytes | None]] = []
    number = 0
    pending: list[bytes] = []  # the start of a line that continues in the next chunk
    pending_bytes = 0
    overlong = False
    async for chunk in chunks:
        parts = chunk.split(b"\n")
        for part in parts[:-1]:
            number += 1
            if overlong:
                batch.append((number, None))
                overlong = False
            elif pending:
                pending.append(part)
                batch.append((number, b"".join(pending)))
                pending, pending_bytes = [], 0
            else:
                batch.append((number, part))
            if len(batch) == BATCH_LINES:
                yield batch
                batch = []
        if parts[-1] and not overlong:
            pending.append(parts[-1])
            pending_bytes += len(parts[-1])
            if pending_bytes > max_bytes:
                pending, pending_bytes, overlong = [], 0, True
    if overlong or pending:
        batch.append((number + 1, None if overlong else b"".join(pending)))
    if batch:
        yield batch


# ---------------------------------------------------------------------------- the feed


@dataclass
class _Feed:
    conn: asyncpg.Connection | None
    uri: str
    options: LoadOptions
    errors: ErrorSink
    result: FeedResult

    async def write(self, quads: list[Quad]) -> None:
        if not quads:
            return
        assert self.conn is not None
        async with self.conn.transaction():
            inserted = await rdf_store.insert_quads(self.conn, quads)
        self.result.counts.total_records += len(quads)
        self.result.counts.total_duplicates += len(quads) - inserted

    async def error(self, record_num: int, message: str, code: ErrorCode = "PARSING_ERROR") -> bool:
        """Record a bad record; True when the feed must stop (failOnError)."""
        if code == "PARSING_ERROR":
            self.result.counts.parsing_errors += 1
        await self.errors.add(FeedError(code, message, self.uri, record_num))
        if self.options.fail_on_error:
            self.result.stopped_on_error = True
        return self.options.fail_on_error


async def load_rdf_feed(
    pool: asyncpg.Pool,
    chunks: Chunks,
    *,
    uri: str,
    options: LoadOptions,
    errors: ErrorSink,
    cancelled: Callable[[], Awaitable[bool]],
) -> FeedResult:
    """Load one RDF feed into the quad store (the FeedLoader for the four RDF formats)."""
    feed = _Feed(None, uri, options, errors, FeedResult())
    bnode_prefix = f"b{uuid.uuid4().hex[:12]}_"
    if options.format in ("ntriples", "nquads"):
        parser = LineParser(graphs=options.format == "nquads", bnode_prefix=bnode_prefix)
        async with pool.acquire() as conn:
            feed.conn = conn
            await _load_lines(feed, parser, chunks, cancelled)
    elif options.format in ("turtle", "rdfxml"):
        async with pool.acquire() as conn:
            feed.conn = conn
            await rdf_documents.load_document(feed, chunks(), cancelled, bnode_prefix)
    else:
        raise ValueError(f"not an RDF format: {options.format}")
    return feed.result


async def _load_lines(
    feed: _Feed, parser: LineParser, chunks: Chunks, cancelled: Callable[[], Awaitable[bool]]
) -> None:
    graph = iri_term(feed.options.named_graph_uri)
    stop_at_error = feed.options.fail_on_error
    max_bytes = limits.current().max_record_bytes
    writing: asyncio.Task[None] | None = None  # the previous batch, written while this one parses
    try:
        async for lines in _line_batches(chunks(), max_bytes):
            parsed = await asyncio.to_thread(
                _parse_lines, parser, lines, graph, stop_at_error, max_bytes
            )
            if writing is not None:
                await writing
                writing = None
            writing = asyncio.create_task(feed.write(parsed.quads))
            for number, message in parsed.errors:
                if await feed.error(number, message):
                    return
            if await cancelled():
                return
    finally:
        if writing is not None:
            await writing


def _excerpt(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
