"""RDF feeds (`ntriples`, `nquads`, `rdfxml`, `turtle`) into the quad store (rdf_store.py).

:func:`load_rdf_feed` is the :class:`~loadbay_loader.feeds.FeedLoader` for the four RDF formats.
rdflib parses; this module feeds it, turns its output into N-Triples terms, checks what rdflib
lets through, and writes bounded batches, each in its own transaction (a Neptune load is not
atomic: with failOnError, what loaded before the first error stays).

- **N-Triples and N-Quads stream.** Lines are read from the feed's chunks in batches of
  :data:`BATCH_LINES`, and each line is parsed on its own by rdflib's N-Quads line grammar
  (``NQuadsParser.parseline``), so memory stays flat whatever the file size and an error names
  its line. A batch is parsed in a worker thread while the previous one is written.
  ``cancelled()`` is asked between batches.
- **Turtle and RDF/XML are parsed whole** by rdflib: a document's statements cannot be told
  apart before it is parsed, so memory grows with the file (its text plus its statements). A
  syntax error anywhere loads nothing from the feed (one PARSING_ERROR with the line rdflib
  reports); afterwards the statements are checked and written in batches like the others.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal
from xml.sax import SAXParseException

import asyncpg
import rdflib
from rdflib import BNode, Graph, URIRef
from rdflib import Literal as RdfLiteral
from rdflib.exceptions import ParserError
from rdflib.plugins.parsers.notation3 import BadSyntax
from rdflib.plugins.parsers.nquads import NQuadsParser
from rdflib.plugins.parsers.ntriples import r_literal, r_tail, r_uriref, unquote
from rdflib.store import Store

from loadbay_loader import rdf_store
from loadbay_loader.feeds import (
    Chunks,
    ErrorCode,
    ErrorSink,
    FeedError,
    FeedResult,
    LoadOptions,
)

__all__ = ["BATCH_LINES", "MAX_LINE_BYTES", "load_rdf_feed"]

BATCH_LINES = 10_000  # lines (or statements, for whole documents) per transaction
MAX_LINE_BYTES = 16 << 20  # a longer N-Triples/N-Quads line is a parsing error, not buffered

# rdflib rewrites typed literals' lexical forms by default ("01"^^xsd:integer becomes "1");
# Neptune stores them as written. Process-wide, and nothing else in the loader uses rdflib.
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

_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
# An absolute IRI with none of the characters IRIREF forbids (after \u escapes are decoded: a
# space is no more valid as \u0020), and no lone surrogate (from an escaped \uD800).
_IRI = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|^`\\\ud800-\udfff]*')
_IRI_ESCAPES = re.compile(r"(?:[^\\]|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8})*")
_STRING_ESCAPES = re.compile(r"""(?:[^\\]|\\[tbnrf"'\\]|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8})*""")
_SURROGATE = re.compile("[\ud800-\udfff]")
# BLANK_NODE_LABEL of the N-Triples/Turtle grammars (without the colon that rdflib allows).
_PN_CHARS_U = (
    "A-Za-z_\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_PN_CHARS = _PN_CHARS_U + "\\-0-9\u00b7\u0300-\u036f\u203f-\u2040"
_BNODE = re.compile(f"_:([{_PN_CHARS_U}0-9](?:[{_PN_CHARS}.]*[{_PN_CHARS}])?)")
_ECHARS = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f\x7f]')


class BadStatement(ValueError):
    """A statement rdflib parsed that is not valid RDF (or a line it could not parse)."""


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ECHARS.get(char) or f"\\u{ord(char):04X}"


def iri_term(iri: str) -> str:
    """An IRI in N-Triples syntax, if it is a valid absolute IRI."""
    if not _IRI.fullmatch(iri):
        raise BadStatement(f"not a valid absolute IRI: <{iri}>")
    return f"<{iri}>"


def literal_term(lexical: str, language: str | None, datatype: str | None) -> str:
    """A literal in canonical N-Triples syntax (the characters that must be are escaped)."""
    if _SURROGATE.search(lexical):
        raise BadStatement("a literal holds a lone surrogate (an escaped \\uD800-\\uDFFF)")
    quoted = _NEEDS_ESCAPE.sub(_escape, lexical)
    if language:
        return f'"{quoted}"@{language.lower()}'
    if datatype and datatype != _XSD_STRING:
        return f'"{quoted}"^^{iri_term(datatype)}'
    return f'"{quoted}"'


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
) -> _ParsedBatch:
    batch = _ParsedBatch([], [])
    for number, raw in lines:
        try:
            if raw is None:
                raise BadStatement(f"line longer than {MAX_LINE_BYTES} bytes")
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
    chunks: AsyncIterator[bytes],
) -> AsyncIterator[list[tuple[int, bytes | None]]]:
    """The feed's lines, numbered from 1, without their LF, in lists of BATCH_LINES. A line
    longer than MAX_LINE_BYTES comes as None (and is not kept)."""
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
            if pending_bytes > MAX_LINE_BYTES:
                pending, pending_bytes, overlong = [], 0, True
    if overlong or pending:
        batch.append((number + 1, None if overlong else b"".join(pending)))
    if batch:
        yield batch


# ---------------------------------------------------------------------------- Turtle, RDF/XML


class _Statements(Store):
    """An rdflib store that only keeps the statements in parse order (duplicates too, so they
    are counted), without the indexes of rdflib's in-memory store."""

    def __init__(self) -> None:
        super().__init__()
        self.triples_in_order: list[tuple[Any, Any, Any]] = []

    def add(self, triple: Any, context: Any, quoted: bool = False) -> None:
        self.triples_in_order.append(triple)


def _parse_document(text: str, rdflib_format: str, base_uri: str) -> list[tuple[Any, Any, Any]]:
    store = _Statements()
    Graph(store=store, bind_namespaces="none").parse(
        data=text, format=rdflib_format, publicID=base_uri
    )
    return store.triples_in_order


_RDFXML_POSITION = re.compile(r":(\d+):(\d+): ")


def _document_error(exc: Exception) -> tuple[int, str]:
    """(line number or 0, message) of an rdflib Turtle or RDF/XML parse failure."""
    if isinstance(exc, BadSyntax):
        # str(BadSyntax) dumps the surrounding bytes; its reason and line are attributes.
        return exc.lines + 1, f"Turtle syntax: {getattr(exc, '_why', 'bad syntax')}"
    if isinstance(exc, SAXParseException):
        return exc.getLineNumber() or 0, f"XML syntax: {exc.getMessage()}"
    message = str(exc)
    if isinstance(exc, ParserError) and (position := _RDFXML_POSITION.search(message)):
        return int(position.group(1)), f"RDF/XML: {message[position.end() :]}"
    return 0, message or type(exc).__name__


def _document_quads(
    triples: Iterable[tuple[Any, Any, Any]], graph: str, bnodes: dict[BNode, str], prefix: str
) -> Iterable[Quad | BadStatement]:
    def term(node: Any) -> str:
        if isinstance(node, URIRef):
            return iri_term(str(node))
        if isinstance(node, BNode):
            return bnodes.setdefault(node, f"_:{prefix}{len(bnodes) + 1}")
        if isinstance(node, RdfLiteral):
            # str(): an rdflib URIRef is never equal to a plain str such as _XSD_STRING.
            datatype = str(node.datatype) if node.datatype is not None else None
            return literal_term(str(node), node.language, datatype)
        raise BadStatement(f"not an RDF term: {node!r}")

    for s, p, o in triples:
        try:
            if isinstance(s, RdfLiteral):
                raise BadStatement(f"a literal cannot be a subject: {s.n3()}")
            if not isinstance(p, URIRef):
                raise BadStatement(f"a predicate must be an IRI: {p.n3()}")
            yield term(s), term(p), term(o), graph
        except BadStatement as exc:
            yield exc


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
        await _load_document(pool, feed, chunks, cancelled, bnode_prefix)
    else:
        raise ValueError(f"not an RDF format: {options.format}")
    return feed.result


async def _load_lines(
    feed: _Feed, parser: LineParser, chunks: Chunks, cancelled: Callable[[], Awaitable[bool]]
) -> None:
    graph = iri_term(feed.options.named_graph_uri)
    stop_at_error = feed.options.fail_on_error
    writing: asyncio.Task[None] | None = None  # the previous batch, written while this one parses
    try:
        async for lines in _line_batches(chunks()):
            parsed = await asyncio.to_thread(_parse_lines, parser, lines, graph, stop_at_error)
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


async def _load_document(
    pool: asyncpg.Pool,
    feed: _Feed,
    chunks: Chunks,
    cancelled: Callable[[], Awaitable[bool]],
    bnode_prefix: str,
) -> None:
    data = bytearray()
    async for chunk in chunks():
        data += chunk
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        await feed.error(line, f"not UTF-8: byte 0x{data[exc.start]:02X}")
        return
    del data
    rdflib_format = "turtle" if feed.options.format == "turtle" else "xml"
    try:
        triples = await asyncio.to_thread(
            _parse_document, text, rdflib_format, feed.options.base_uri
        )
    except MemoryError:
        await feed.error(0, "the document does not fit in memory", "OUT_OF_MEMORY_ERROR")
        return
    except Exception as exc:  # rdflib raises many kinds (BadSyntax, ParserError, SAX, ValueError)
        await feed.error(*_document_error(exc))
        return
    del text
    graph = iri_term(feed.options.named_graph_uri)
    quads = _document_quads(triples, graph, {}, bnode_prefix)
    async with pool.acquire() as conn:
        feed.conn = conn
        batch: list[Quad] = []
        for item in quads:
            if isinstance(item, BadStatement):
                await feed.write(batch)
                batch = []
                if await feed.error(0, str(item)):
                    return
                continue
            batch.append(item)
            if len(batch) >= BATCH_LINES:
                await feed.write(batch)
                batch = []
                if await cancelled():
                    return
        await feed.write(batch)


def _excerpt(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
