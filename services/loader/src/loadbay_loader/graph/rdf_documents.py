"""Turtle and RDF/XML feeds, parsed as they stream by pyoxigraph (W3C-strict, in Rust).

pyoxigraph's parser is synchronous and reads a file-like object; the feed is an async stream.
A worker thread runs the parser over a reader that takes chunks from a bounded queue the event
loop fills, and hands back statements in batches of ``BATCH`` through another bounded queue:
memory stays at a few chunks and two batches whatever the document's size.

A syntax error ends the feed (one PARSING_ERROR with its line; the parser cannot resume inside
a document); what loaded before it stays, as with every Neptune load. pyoxigraph gives the line
of a Turtle error; for RDF/XML it gives none, so the error names the line the parser had read
up to. A statement that parses but cannot be stored (an RDF 1.2 triple term or base direction)
is a PARSING_ERROR of its own, and the feed goes on without
failOnError.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import pyoxigraph as ox

from loadbay_loader.graph import rdf_store
from loadbay_loader.graph.rdf_terms import BadStatement, iri_term, node_term, rdfxml_object_term

Quad = rdf_store.Quad
BATCH = 10_000  # statements per transaction
INBOX_CHUNKS = 4  # chunks read ahead of the parser
_FORMATS = {"turtle": ox.RdfFormat.TURTLE, "rdfxml": ox.RdfFormat.RDF_XML}
_BOM = b"\xef\xbb\xbf"


class DocumentFeed(Protocol):
    """What rdf.py's feed gives this module: its options, and where statements and errors go."""

    @property
    def options(self) -> Any: ...

    async def write(self, quads: list[Quad]) -> None: ...

    async def error(self, record_num: int, message: str) -> bool:
        """Record a PARSING_ERROR; True when the feed must stop."""
        ...


@dataclass
class _Failed:
    line: int
    message: str
    fatal: bool  # a syntax error: the parser stopped


class _Stopped(Exception):
    """The event loop gave up on the parse (an error, a cancel): the reader ends it."""


class _ChunkReader(io.RawIOBase):
    """The file pyoxigraph reads, in the worker thread: chunks from the loop's bounded queue."""

    def __init__(self, inbox: asyncio.Queue[bytes | None], loop: asyncio.AbstractEventLoop):
        self._inbox = inbox
        self._loop = loop
        self._buffer = b""
        self._pos = 0  # how much of _buffer was read
        self._first = True
        self._eof = False
        self.stop = threading.Event()
        self.newlines = 0  # line breaks handed to the parser (RDF/XML errors have no position)
        self.ends_line = True

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while self._pos >= len(self._buffer) and not self._eof:
            if self.stop.is_set():
                raise _Stopped
            item = asyncio.run_coroutine_threadsafe(self._inbox.get(), self._loop).result()
            if item is None:
                self._eof = True
            else:
                self._buffer, self._pos = item, 0
                if self._first:  # pyoxigraph takes a byte-order mark for a character
                    self._buffer = self._buffer.removeprefix(_BOM)
                    self._first = False
        if self.stop.is_set():
            raise _Stopped
        n = min(len(target), len(self._buffer) - self._pos)
        if n:
            piece = memoryview(self._buffer)[self._pos : self._pos + n]
            target[:n] = piece
            self._pos += n
            self.newlines += self._buffer.count(b"\n", self._pos - n, self._pos)
            self.ends_line = self._buffer[self._pos - 1] == 0x0A
        return n

    def line_read_to(self) -> int:
        return self.newlines + (0 if self.ends_line and self.newlines else 1)


def _parse(
    reader: _ChunkReader,
    fmt: ox.RdfFormat,
    base_iri: str,
    graph: str,
    bnode_prefix: str,
    put: Callable[[list[Quad] | _Failed | None], None],
) -> None:
    """The worker thread: parse, convert, and put batches, statement errors and the end."""
    batch: list[Quad] = []
    object_term = rdfxml_object_term if fmt == ox.RdfFormat.RDF_XML else node_term
    statements = ox.parse(io.BufferedReader(reader, 1 << 18), format=fmt, base_iri=base_iri)
    while True:
        try:
            quad = next(statements)
        except StopIteration:
            break
        except SyntaxError as exc:
            if reader.stop.is_set():
                return
            line = exc.lineno or reader.line_read_to()
            put(batch)
            put(_Failed(line, _syntax_message(exc, fmt), fatal=True))
            return
        try:
            quad_terms = (
                node_term(quad.subject, bnode_prefix),
                node_term(quad.predicate, bnode_prefix),
                object_term(quad.object, bnode_prefix),
                graph,
            )
        except BadStatement as exc:
            put(batch)
            batch = []
            put(_Failed(reader.line_read_to(), str(exc), fatal=False))
            continue
        batch.append(quad_terms)
        if len(batch) >= BATCH:
            put(batch)
            batch = []
    put(batch)
    put(None)


def _syntax_message(exc: SyntaxError, fmt: ox.RdfFormat) -> str:
    what = "Turtle" if fmt == ox.RdfFormat.TURTLE else "RDF/XML"
    where = "" if exc.lineno else " (at or before this line: the RDF/XML parser gives no position)"
    return f"{what} syntax: {exc.msg}{where}"


async def load_document(
    feed: DocumentFeed,
    chunks: AsyncIterator[bytes],
    cancelled: Callable[[], Awaitable[bool]],
    bnode_prefix: str,
) -> None:
    """Stream one Turtle or RDF/XML document into the store through ``feed``."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[bytes | None] = asyncio.Queue(INBOX_CHUNKS)
    outbox: asyncio.Queue[list[Quad] | _Failed | None] = asyncio.Queue(2)
    reader = _ChunkReader(inbox, loop)
    source_failed: list[BaseException] = []

    async def pump() -> None:
        try:
            async for chunk in chunks:
                if chunk:
                    await inbox.put(chunk)
        except Exception as exc:  # raised on the loop's side (a limit, an S3 error)
            source_failed.append(exc)
            reader.stop.set()
            await outbox.put(None)  # wakes the loop's side if it waits for the parser
            return
        finally:
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]
        await inbox.put(None)

    def put(item: list[Quad] | _Failed | None) -> None:
        if reader.stop.is_set():
            raise _Stopped
        future: Future[None] = asyncio.run_coroutine_threadsafe(outbox.put(item), loop)
        future.result()

    def parse() -> None:
        # Always ends with a terminal item, or the loop's side would wait for ever.
        with contextlib.suppress(_Stopped):
            try:
                _parse(
                    reader,
                    _FORMATS[feed.options.format],
                    feed.options.base_uri,
                    iri_term(feed.options.named_graph_uri),
                    bnode_prefix,
                    put,
                )
            except _Stopped:
                raise
            except MemoryError as exc:  # pyoxigraph's buffer (16 MiB) cannot hold one token
                message = (
                    f"a token (a literal, an IRI, a comment) longer than the parser's limit: {exc}"
                )
                put(_Failed(reader.line_read_to(), message, fatal=True))
            except Exception as exc:  # a bad base IRI or graph name, say
                put(_Failed(reader.line_read_to(), f"{type(exc).__name__}: {exc}", fatal=True))

    pumping = asyncio.create_task(pump())
    parsing = asyncio.create_task(asyncio.to_thread(parse))
    try:
        while True:
            item = await outbox.get()
            if source_failed:
                raise source_failed[0]
            if item is None:
                return
            if isinstance(item, _Failed):
                if await feed.error(item.line, item.message) or item.fatal:
                    return
                continue
            await feed.write(item)
            if item and await cancelled():
                return
    finally:
        reader.stop.set()
        pumping.cancel()
        # Unblock the thread wherever it waits (a full outbox, an empty inbox), then join it.
        while not parsing.done():
            with contextlib.suppress(asyncio.QueueEmpty):
                outbox.get_nowait()
            with contextlib.suppress(asyncio.QueueFull):
                inbox.put_nowait(None)
            await asyncio.wait([parsing], timeout=0.05)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pumping
        if not parsing.cancelled():
            parsing.exception()  # retrieved (None unless the parser itself broke)
