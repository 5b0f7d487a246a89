"""Turning a failed PostgreSQL ``COPY ... FORMAT csv`` into an error a person can act on.

PostgreSQL type-checks every value of a COPY into a typed table; when one is bad it aborts the
statement with an error whose *context* names the place, e.g.
``COPY stg, line 3, column amount: "abc"`` (a bad value) or ``COPY stg, line 3: "1,2"`` (a
whole-row problem such as a missing or extra field). :func:`row_error_from_copy` reads that into
a :class:`RowError` carrying file, line, column and value.

What PostgreSQL's "line" means (checked on PostgreSQL 16.2): it counts physical lines, header
included (line 1 = header), *including* line breaks inside quoted fields, but it reports the
count reached *after* reading the whole failing record. So for a record without quoted line
breaks (nearly every record of nearly every file) it is exactly the record's line, while for a
record that spans lines 3-5 it says line 5, and for an unterminated quote it points at the end
of the file (one past the last line if the file ends with a line break). PostgreSQL also only
counts the embedded breaks that match the file's line ending (``\\n`` for LF files, ``\\r`` for
CRLF/CR files). :func:`locate_record` re-reads the file with PostgreSQL's own record-splitting
rules to find the line on which the failing record *starts*, counted as a person (or an editor)
counts lines; it is the slow path that only runs after a failure.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from loadbay_platform.reasons import truncate

__all__ = [
    "END_MARKERS",
    "CsvRecordScanner",
    "RecordSpan",
    "RowError",
    "find_end_marker",
    "locate_record",
    "row_error_from_copy",
]


class RowError(Exception):
    """The one error a file that cannot be loaded raises.

    Attributes: ``file`` (the name the caller gave), ``line`` (1 = header; ``None`` when the
    problem is the file as a whole), ``column`` (the dataset column, when known), ``value`` (the
    offending field's text as PostgreSQL quotes it, cut by PostgreSQL at 100 bytes with
    ``...``; ``None`` for whole-row problems and empty values) and ``reason``.

    ``str(e)`` reads like ``orders_2.csv line 3, column 'amount': invalid input syntax for type
    numeric: "abc"``.
    """

    def __init__(
        self,
        file: str,
        reason: str,
        *,
        line: int | None = None,
        column: str | None = None,
        value: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.value = value
        # A header of 10,000 unexpected names is 89,000 characters: stored, emailed, bounded.
        self.reason = truncate(reason)
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file
        if self.line is not None:
            where += f" line {self.line}"
        if self.column is not None:
            where += f"{',' if self.line is not None else ''} column '{self.column}'"
        return f"{where}: {self.reason}"

    def at_line(self, line: int) -> RowError:
        """The same error, placed on another line."""
        return RowError(self.file, self.reason, line=line, column=self.column, value=self.value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.file, self.reason, self.line, self.column, self.value))


def _rebuild(
    file: str, reason: str, line: int | None, column: str | None, value: str | None
) -> RowError:
    return RowError(file, reason, line=line, column=column, value=value)


# The context line CopyFromErrorCallback (src/backend/commands/copyfrom.c) writes:
#   COPY <rel>, line <n>, column <att>: "<value>"   a bad value
#   COPY <rel>, line <n>, column <att>: null input   an input function rejected a NULL
#   COPY <rel>, line <n>: "<row text>"               a whole-row problem
#   COPY <rel>, line <n>                              no text (e.g. an encoding error)
# The quoted text is not escaped and may itself hold quotes, commas and line breaks.
_CONTEXT = re.compile(
    r"^COPY (?P<rel>[^,\n]+), line (?P<line>\d+)"
    r"(?:, column (?P<column>[A-Za-z0-9_]+))?"
    r"(?:: (?P<rest>.*))?\Z",
    re.MULTILINE | re.DOTALL,
)
_MISSING_DATA = re.compile(r'missing data for column "(?P<column>[^"]+)"')


def row_error_from_copy(
    exc: asyncpg.PostgresError, *, file: str, encoding: str = "utf-8"
) -> RowError | None:
    """Map an error raised by a CSV ``COPY`` to a :class:`RowError`.

    Returns ``None`` when the error is not about the data (no COPY context: a missing table, a
    lost connection...), which the caller should let propagate unchanged.
    """
    context = getattr(exc, "context", None) or ""
    match = _CONTEXT.search(context)
    if match is None:
        return None
    line = int(match["line"])
    column: str | None = match["column"]
    rest: str | None = match["rest"]
    message = str(getattr(exc, "message", None) or exc)
    value: str | None = None
    if column is not None and rest is not None and rest != "null input":
        value = rest[1:-1] if len(rest) >= 2 and rest[0] == rest[-1] == '"' else rest
    reason = message

    if isinstance(exc, asyncpg.NotNullViolationError):
        column = getattr(exc, "column_name", None) or column
        reason = f'column "{column}" requires a value but the field is empty'
    elif isinstance(exc, asyncpg.BadCopyFileFormatError):
        missing = _MISSING_DATA.fullmatch(message)
        if missing is not None:
            column = missing["column"]
            reason = f'row has too few fields: no value for column "{column}"'
        elif message.startswith("extra data after last expected column"):
            reason = "row has too many fields (extra data after the last expected column)"
        elif message.startswith("unterminated CSV quoted field"):
            reason = "unterminated quoted field: a quote opened in this row is never closed"
    elif isinstance(
        exc, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError
    ):
        reason = f"{message} (the file is not valid {encoding})"
    return RowError(file, reason, line=line, column=column, value=value)


@dataclass(frozen=True)
class RecordSpan:
    """Where one CSV record sits in a file.

    ``first_line``/``last_line`` count line breaks as a person does (``\\n``, ``\\r\\n`` and a
    lone ``\\r`` each end a line; 1 = first line). ``pg_first``/``pg_last`` are PostgreSQL's
    ``cur_lineno`` before and after reading the record (see the module docstring): an error in
    this record is reported by PostgreSQL with a line in ``[pg_first, pg_last]``.
    """

    index: int
    first_line: int
    last_line: int
    pg_first: int
    pg_last: int
    start: int
    end: int
    unterminated: bool = False
    end_marker: bool = False  # the record is exactly ``\.``: see :func:`find_end_marker`


_LF = 0x0A
_CR = 0x0D


class CsvRecordScanner:
    """Splits raw CSV bytes into records with PostgreSQL's rules (``CopyReadLineText``).

    A quote character toggles "inside quotes" wherever it appears; when the escape character
    differs from the quote, an escape inside quotes makes the next quote literal. An unquoted
    ``\\n``, ``\\r\\n`` or ``\\r`` ends a record; line breaks inside quotes belong to the field.
    Python only looks at the quote, escape and line-break bytes (found with a compiled regex),
    but it is still per-record Python work: use it for headers and after failures, never on the
    load path.
    """

    def __init__(self, quote: str = '"', escape: str | None = None) -> None:
        q = quote.encode()
        e = escape.encode() if escape is not None and escape != quote else None
        specials = [b"\n", b"\r", q] + ([e] if e is not None else [])
        self._pattern = re.compile(b"[" + b"".join(re.escape(s) for s in specials) + b"]")
        self._quote = q[0]
        self._escape = e[0] if e is not None else -1
        self._offset = 0  # absolute offset of the next byte fed
        self._in_quote = False
        self._last_was_esc = False
        self._prev_special = -2
        self._eol_is_lf: bool | None = None  # PostgreSQL's eol_type: NL vs CR/CRNL, once known
        self._cr_at = -2  # offset of the last \r (to count \r\n as one line break)
        self._skip_lf_at = -2  # offset of the \n completing an unquoted \r\n terminator
        self._breaks = 0  # line breaks seen, as a person counts them
        self._ends_with_break = False
        self._tail = b""  # the last two bytes fed, for records straddling chunks
        self._index = 1
        self._rec_start = 0
        self._rec_first_line = 1
        self._pg_first = 1
        self._pg = 1

    def feed(self, chunk: bytes) -> list[RecordSpan]:
        """Consume the next bytes; return the records they complete."""
        done: list[RecordSpan] = []
        base = self._offset
        self._offset += len(chunk)
        if chunk:
            self._ends_with_break = chunk[-1] in (_LF, _CR)
        for m in self._pattern.finditer(chunk):
            pos = base + m.start()
            c = chunk[m.start()]
            if pos != self._prev_special + 1:
                self._last_was_esc = False  # PostgreSQL resets it on every non-escape byte
            self._prev_special = pos
            if c == _LF:
                if self._cr_at != pos - 1:
                    self._breaks += 1
            elif c == _CR:
                self._breaks += 1
                self._cr_at = pos
            if pos == self._skip_lf_at:
                self._rec_start = pos + 1
                continue
            if self._in_quote and c == self._escape:
                self._last_was_esc = not self._last_was_esc
            if c == self._quote and not self._last_was_esc:
                self._in_quote = not self._in_quote
            if c != self._escape:
                self._last_was_esc = False
            if self._in_quote:
                # PostgreSQL: "if (in_quote && c == (eol_type == EOL_NL ? '\n' : '\r'))
                # cur_lineno++" (an unknown eol_type compares with '\r').
                if c == (_LF if self._eol_is_lf else _CR):
                    self._pg += 1
                continue
            if c in (_LF, _CR):
                if self._eol_is_lf is None:
                    self._eol_is_lf = c == _LF
                marker = (
                    pos - self._rec_start == 2
                    and self._bytes(self._rec_start, pos, chunk, base) == b"\\."
                )
                done.append(
                    self._close(pos, last_line=self._breaks, unterminated=False, marker=marker)
                )
                self._rec_start = pos + 1
                if c == _CR:
                    self._skip_lf_at = pos + 1
        self._tail = (self._tail + chunk[-2:])[-2:]
        return done

    def _bytes(self, start: int, end: int, chunk: bytes, base: int) -> bytes:
        if start >= base:
            return chunk[start - base : end - base]
        joined = self._tail + chunk  # rare: a short record straddling two chunks
        offset = base - len(self._tail)
        return joined[start - offset : end - offset]

    def finish(self) -> RecordSpan | None:
        """The last record, if the data does not end with a line break (or ends in quotes)."""
        if self._offset > self._rec_start or self._in_quote:
            last_line = self._breaks if self._ends_with_break else self._breaks + 1
            return self._close(
                self._offset,
                last_line=max(last_line, self._rec_first_line),
                unterminated=self._in_quote,
                marker=(
                    not self._in_quote
                    and self._offset - self._rec_start == 2
                    and self._tail == b"\\."
                ),
            )
        return None

    def _close(
        self, end: int, *, last_line: int, unterminated: bool, marker: bool = False
    ) -> RecordSpan:
        span = RecordSpan(
            index=self._index,
            first_line=self._rec_first_line,
            last_line=last_line,
            pg_first=self._pg_first,
            pg_last=self._pg,
            start=self._rec_start,
            end=end,
            unterminated=unterminated,
            end_marker=marker,
        )
        self._index += 1
        self._rec_first_line = self._breaks + 1
        self._pg += 1
        self._pg_first = self._pg
        return span


async def locate_record(
    chunks: AsyncIterator[bytes], pg_line: int, *, quote: str = '"', escape: str | None = None
) -> RecordSpan | None:
    """Find the record PostgreSQL meant by ``line pg_line``, reading only as far as needed.

    Closes ``chunks`` when done. Returns ``None`` if the data has no such record.
    """
    scanner = CsvRecordScanner(quote, escape)
    try:
        async for chunk in chunks:
            for span in scanner.feed(chunk):
                if span.pg_first <= pg_line <= span.pg_last:
                    return span
                if span.pg_first > pg_line:
                    return None
        last = scanner.finish()
        if last is not None and last.pg_first <= pg_line:
            return last
        return None
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def read_span(chunks: AsyncIterator[bytes], start: int, end: int) -> bytes:
    """The bytes ``[start, end)`` of the data (one record, on the slow path); closes ``chunks``."""
    parts: list[bytes] = []
    offset = 0
    try:
        async for chunk in chunks:
            lo, hi = max(start - offset, 0), min(end - offset, len(chunk))
            if lo < hi:
                parts.append(chunk[lo:hi])
            offset += len(chunk)
            if offset >= end:
                break
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    return b"".join(parts)


def undecodable_field(
    record: bytes,
    columns: Sequence[str],
    *,
    delimiter: str,
    quote: str,
    escape: str | None,
    encoding: str,
) -> tuple[str, str] | None:
    """The first field of one CSV ``record`` that is not valid ``encoding``: its column and its
    text with the bad bytes shown as U+FFFD. PostgreSQL names only the line of such an error."""
    # latin-1 maps every byte to one character, so fields split as bytes and come back intact.
    reader = csv.reader(
        io.StringIO(record.decode("latin-1"), newline=""),
        delimiter=delimiter,
        quotechar=quote,
        escapechar=escape if escape is not None and escape != quote else None,
        doublequote=escape is None or escape == quote,
    )
    try:
        fields = next(reader)
    except (csv.Error, StopIteration):
        return None
    for column, field in zip(columns, fields, strict=False):
        raw = field.encode("latin-1")
        try:
            raw.decode(encoding)
        except UnicodeDecodeError:
            return column, raw.decode(encoding, "replace")[:100]
    return None


# PostgreSQL before 18 reads a CSV line holding only ``\.`` as the end of the data and silently
# ignores the rest of the file. These are that line with the line breaks around it; a file that
# contains none of them cannot have one (the end of the file is checked separately).
END_MARKERS = (b"\n\\.\n", b"\n\\.\r", b"\r\\.\r", b"\r\\.\n")


async def find_end_marker(
    chunks: AsyncIterator[bytes], *, quote: str = '"', escape: str | None = None
) -> RecordSpan | None:
    """The first record that is exactly ``\\.`` (outside quotes), if any. Closes ``chunks``."""
    scanner = CsvRecordScanner(quote, escape)
    try:
        async for chunk in chunks:
            for span in scanner.feed(chunk):
                if span.end_marker:
                    return span
        last = scanner.finish()
        return last if last is not None and last.end_marker else None
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
