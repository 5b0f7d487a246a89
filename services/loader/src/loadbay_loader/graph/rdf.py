"""RDF feeds (`ntriples`, `nquads`, `rdfxml`, `turtle`) into the quad store (rdf_store.py).

:func:`load_rdf_feed` is the :class:`~loadbay_loader.graph.feeds.FeedLoader` for the four RDF
formats.
Every format streams: memory stays flat whatever the file size, statements are written in
bounded batches, each in its own transaction (a Neptune load is not atomic: with failOnError,
what loaded before the first error stays), and ``cancelled()`` is asked between batches.
pyoxigraph (Rust, W3C-strict) parses all four.

- **N-Triples and N-Quads**, here: the feed is cut into blocks of :data:`BATCH_LINES` whole
  lines, and pyoxigraph parses a block at once in a worker thread while the previous block is
  written. A block with a bad line is parsed again line by line, so each error names its line
  and, without failOnError, the next line goes on. A line longer than ``max_record_bytes`` is a
  parsing error and is never buffered.
- **Turtle and RDF/XML**: pyoxigraph parses them as they stream (rdf_documents.py). A syntax
  error ends the feed, with its line.

Lines are counted as N-Triples and pyoxigraph count them: LF, CRLF and a lone CR each end one.
Statements without a graph (all triples, N-Quads lines without one) go to
``options.named_graph_uri``; ``options.base_uri`` resolves relative IRIs in Turtle and RDF/XML
(RFC 3986, whatever the base's scheme). Input is UTF-8 (a line or document that is not is a
parsing error); a leading byte-order mark is skipped; text is stored as written, with no
Unicode normalization, and ``\\uXXXX`` escapes are decoded.

Terms are stored in N-Triples syntax (rdf_terms.py). Literals keep their lexical form
(``"01"^^xsd:integer`` stays ``01``), lose an explicit ``^^xsd:string`` (the same literal in
RDF 1.1) and have their language tag lowercased (tags compare case-insensitively), so equal
statements are stored once. Blank node labels get a prefix unique to the feed: the same label
in two files is two nodes.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import pyoxigraph as ox

from loadbay_loader.graph import rdf_documents, rdf_store
from loadbay_loader.graph.feeds import (
    Chunks,
    ErrorCode,
    ErrorSink,
    FeedError,
    FeedResult,
    LoadOptions,
)
from loadbay_loader.graph.rdf_terms import BadStatement, iri_term, node_term, shown
from loadbay_loader.streaming import limits

__all__ = ["BATCH_LINES", "load_rdf_feed"]

BATCH_LINES = 10_000  # lines (or statements, for documents) per transaction
# A line longer than limits.max_record_bytes is a parsing error, and is not buffered.

Quad = rdf_store.Quad
_LINE_FORMATS = {"ntriples": ox.RdfFormat.N_TRIPLES, "nquads": ox.RdfFormat.N_QUADS}
_NAMES = {"ntriples": "N-Triples", "nquads": "N-Quads"}
_BOM = b"\xef\xbb\xbf"
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")

# ---------------------------------------------------------------------------- blocks of lines


@dataclass
class _Block:
    first_line: int  # the number of the block's first line, from 1
    data: bytes  # whole lines; an overlong line is left out (an empty line in its place)
    overlong: list[int] = field(default_factory=list)  # numbers of lines left out


def _line_breaks(data: bytes | bytearray) -> int:
    """How many lines `data` ends: LF, CRLF and a lone CR each end one."""
    breaks = data.count(b"\n")
    if b"\r" in data:
        breaks += data.count(b"\r") - data.count(b"\r\n")
    return breaks


async def _blocks(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[_Block]:
    """The feed in blocks of up to BATCH_LINES LF-ended lines (the last block may lack its LF).
    A line longer than `max_bytes` is never held: it is dropped as it streams."""
    held = bytearray()  # whole lines not yet handed out, then the start of the next line
    held_lines = 0  # LFs in `held`
    line = 1  # the number of the first line in `held`
    overlong: list[int] = []  # lines dropped from `held`, by number
    skipping = False  # inside an overlong line: drop bytes until its LF
    first = True

    def cut(end: int) -> _Block:
        nonlocal held, held_lines, line, overlong
        data = bytes(held[:end])
        del held[:end]
        block = _Block(line, data, overlong)
        line += _line_breaks(data)
        held_lines = held.count(b"\n")
        overlong = []
        return block

    async for chunk in chunks:
        data = chunk
        if first and data:
            data = data.removeprefix(_BOM)
            first = False
        if skipping:
            end = data.find(b"\n")
            if end < 0:
                continue
            data = data[end:]  # the LF stays: the dropped line is an empty one
            skipping = False
        held += data
        held_lines += data.count(b"\n")
        while held_lines >= BATCH_LINES:
            end = 0
            for _ in range(BATCH_LINES):
                end = held.index(b"\n", end) + 1
            yield cut(end)
        tail = len(held) - (held.rfind(b"\n") + 1)  # the line still open
        if tail > max_bytes:
            del held[len(held) - tail :]
            overlong.append(line + _line_breaks(held))
            skipping = True
    if held or overlong:  # the last lines (the last may lack its LF), or an overlong one
        yield cut(len(held))


# ---------------------------------------------------------------------------- parsing


@dataclass
class _ParsedBatch:
    quads: list[Quad]
    errors: list[tuple[int, str]]  # (line number, message)


def _convert(parsed: ox.QuadParser, graph: str, bnode_prefix: str) -> list[Quad]:
    default = ox.DefaultGraph
    return [
        (
            node_term(quad.subject, bnode_prefix),
            node_term(quad.predicate, bnode_prefix),
            node_term(quad.object, bnode_prefix),
            graph if type(quad.graph_name) is default else node_term(quad.graph_name, bnode_prefix),
        )
        for quad in parsed
    ]


def _parse_block(
    block: _Block,
    fmt: str,
    graph: str,
    bnode_prefix: str,
    stop_at_error: bool,
    max_bytes: int,
) -> _ParsedBatch:
    """The block's statements at once; a block with an error again, line by line."""
    if not block.overlong and len(block.data) <= max_bytes:  # so no line is too long
        try:
            parsed = ox.parse(block.data, format=_LINE_FORMATS[fmt])
            return _ParsedBatch(_convert(parsed, graph, bnode_prefix), [])
        except (SyntaxError, BadStatement):
            pass  # where, and which statements before it: line by line
    batch = _ParsedBatch([], [])
    overlong = set(block.overlong)
    for index, line in enumerate(_LINE_BREAK.split(block.data)):
        number = block.first_line + index
        try:
            if number in overlong or len(line) > max_bytes:
                raise BadStatement(
                    f"line longer than {max_bytes} bytes (LOADBAY_LOADER_MAX_RECORD_BYTES)"
                )
            if not line:
                continue
            try:
                parsed = ox.parse(line, format=_LINE_FORMATS[fmt])
                batch.quads += _convert(parsed, graph, bnode_prefix)
            except SyntaxError as exc:
                raise BadStatement(_syntax_message(exc, fmt, line)) from exc
        except BadStatement as exc:
            batch.errors.append((number, str(exc)))
            if stop_at_error:  # the statements on lines before the bad one still load
                break
    return batch


def _syntax_message(exc: SyntaxError, fmt: str, line: bytes) -> str:
    """pyoxigraph's message without its position in the one-line document it was given."""
    detail = (exc.msg or str(exc)).partition(": ")[2] or exc.msg
    found = shown(line.decode("utf-8", "replace"), 80)
    return f"{_NAMES[fmt]} syntax at column {exc.offset}: {detail}; found: {found}"


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
    if options.format in _LINE_FORMATS:
        async with pool.acquire() as conn:
            feed.conn = conn
            await _load_lines(feed, chunks, cancelled, bnode_prefix)
    elif options.format in ("turtle", "rdfxml"):
        async with pool.acquire() as conn:
            feed.conn = conn
            await rdf_documents.load_document(feed, chunks(), cancelled, bnode_prefix)
    else:
        raise ValueError(f"not an RDF format: {options.format}")
    return feed.result


async def _load_lines(
    feed: _Feed, chunks: Chunks, cancelled: Callable[[], Awaitable[bool]], bnode_prefix: str
) -> None:
    graph = iri_term(feed.options.named_graph_uri)
    stop_at_error = feed.options.fail_on_error
    max_bytes = limits.current().max_record_bytes
    writing: asyncio.Task[None] | None = None  # the previous batch, written while this one parses
    try:
        async for block in _blocks(chunks(), max_bytes):
            parsed = await asyncio.to_thread(
                _parse_block,
                block,
                feed.options.format,
                graph,
                bnode_prefix,
                stop_at_error,
                max_bytes,
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
