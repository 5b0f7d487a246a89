"""A graph CSV feed's bytes: the header line, then batches cut at record boundaries that
stream into COPY without being held, read again when COPY rejects one, and the slow path's
record-by-record parser.

Record numbers (``recordNum``) count CSV records after the header from 1, as COPY reads them: a
record with quoted line breaks is one record, a blank line inside the data takes a number but
is neither a record nor an error, blank lines at the end of the file are ignored. Where the
format page and the load page disagree or say nothing, the csv_* modules and plans.py say
what they chose: a blank ``~label`` cell (or one holding only ``;``) is a PARSING_ERROR rather
than the default label, which only applies when the column is absent; values are trimmed; see
plans.py for values, duplicates and errors.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from loadbay_loader.graph.csv_header import HeaderError, split_header_line
from loadbay_loader.graph.feeds import Chunks
from loadbay_loader.streaming import limits

MAX_HEADER_BYTES = 1 << 20
# A line longer than limits.max_record_bytes ends the feed with a PARSING_ERROR (nothing past
# the limit is buffered); a quoted record spanning more than that many bytes of lines is taken
# as an unterminated quote.
_END_MARKER_LINE = re.compile(rb"[\r\n]\\\.[\r\n]")
_END_MARKER_AT_END = re.compile(rb"[\r\n]\\\.$")
# A space next to a delimiter, a line break or a quote: a field that may need trimming.
_EDGE_SPACE = re.compile(rb' [,\r\n"]|[,\r\n"] ')


async def without_trailing_breaks(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
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


class WholeLines:
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


async def read_header(stream: AsyncIterator[bytes]) -> tuple[list[str], bytes, int]:
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
    return split_header_line(text), rest, end + 1


@dataclass
class Batch:
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


class Batches:
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

    async def next(self) -> Batch | None:
        if not self._pending:
            if self._eof:
                return None
            chunk = await anext(self._stream, None)
            if chunk is None:
                self._eof = True
                return None
            self._pending = chunk
        batch = Batch(self._offset, self._keep)
        batch.source_iter = self._pieces(batch)
        return batch

    async def _pieces(self, batch: Batch) -> AsyncIterator[bytes]:
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


async def read_again(chunks: Chunks, start: int, length: int) -> AsyncIterator[bytes]:
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


def parse_batch(
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
