"""The tabular fast path: CSV bytes from object storage straight into a typed PostgreSQL table.

A load is: :func:`create_staging_table` (typed, in the dataset's schema), :func:`copy_csv` for
each file, then :func:`swap_in` - all in one transaction, so readers see the old rows or the new
ones. Python never touches rows on this path (on these machines, rows built in Python reached
only about 60% of a raw ``COPY``'s rate): the bytes go unchanged into ``COPY ... FORMAT csv`` and
PostgreSQL splits, types and checks every value. Python parses only the header line; on the rest
it does a memchr per chunk (for the ``\\.`` check in :func:`copy_csv`), and it reads the data
again only after a failure, to place the error (see :mod:`.copy_errors`).

Typical use::

    async with conn.transaction():
        await create_staging_table(conn, "sales", "orders__staging", columns)
        result = await copy_csv(
            conn, "sales", "orders__staging", columns, CsvOptions(),
            prefetch(s3_chunks(s3, bucket, key)), file_name=key,
            reopen=lambda: s3_chunks(s3, bucket, key),
        )
        await swap_in(conn, "sales", "orders", "orders__staging")
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import get_args

import asyncpg

from loadbay_contracts.datasets import ColumnType
from loadbay_loader.streaming import limits
from loadbay_loader.streaming.objects import aclose
from loadbay_loader.warehouse.copy_errors import (
    END_MARKERS,
    RowError,
    find_end_marker,
    locate_record,
    read_span,
    row_error_from_copy,
    undecodable_field,
)
from loadbay_loader.warehouse.csv_header import match_header, read_header
from loadbay_platform.db import quote_ident, watched

__all__ = [
    "SQL_TYPES",
    "Column",
    "CopyResult",
    "CsvOptions",
    "RowError",
    "copy_csv",
    "create_staging_table",
    "swap_in",
]


#: Declared column type -> the PostgreSQL type, spelled as ``format_type()`` prints it.
SQL_TYPES: dict[str, str] = {
    "text": "text",
    "integer": "integer",
    "bigint": "bigint",
    "numeric": "numeric",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
}
assert set(SQL_TYPES) == set(get_args(ColumnType))


# Python codec name (codecs.lookup(...).name) -> PostgreSQL client encoding for COPY ENCODING.
_PG_ENCODINGS: dict[str, str] = {
    "utf-8": "UTF8",
    "utf-8-sig": "UTF8",
    "iso8859-1": "LATIN1",
    "iso8859-2": "LATIN2",
    "iso8859-15": "LATIN9",
    "cp1250": "WIN1250",
    "cp1251": "WIN1251",
    "cp1252": "WIN1252",
    "koi8-r": "KOI8R",
    "shift_jis": "SJIS",
    "euc_jp": "EUC_JP",
    "gbk": "GBK",
    "big5": "BIG5",
}


@dataclass(frozen=True)
class Column:
    """One column of a dataset: an identifier, a type, and whether it may be empty (NULL)."""

    name: str
    type: ColumnType
    nullable: bool = True


@dataclass(frozen=True)
class CsvOptions:
    """How a dataset's CSV files are written.

    ``escape=None`` means the quote doubles as its own escape (``"a ""b"" c"``), the RFC 4180
    and PostgreSQL default. With ``header=True`` (the default) the first line names the
    columns and is matched to the dataset's; with ``header=False`` the file has no header and
    its fields are in the dataset's column order.
    """

    delimiter: str = ","
    quote: str = '"'
    escape: str | None = None
    header: bool = True
    encoding: str = "utf-8"


@dataclass(frozen=True)
class CopyResult:
    """What one :func:`copy_csv` loaded: data rows (header excluded) and bytes read."""

    rows: int
    bytes: int


def _check_columns(columns: Sequence[Column]) -> None:
    if not columns:
        raise ValueError("a dataset needs at least one column")
    seen: set[str] = set()
    for column in columns:
        quote_ident(column.name)
        if column.type not in SQL_TYPES:
            raise ValueError(f"column {column.name!r}: unknown type {column.type!r}")
        key = column.name.lower()
        if key in seen:
            raise ValueError(f"column {column.name!r} is declared twice (names ignore case)")
        seen.add(key)


def create_table_sql(schema: str, table: str, columns: Sequence[Column]) -> str:
    """The ``CREATE TABLE`` statement :func:`create_staging_table` runs."""
    _check_columns(columns)
    body = ", ".join(
        f"{quote_ident(c.name)} {SQL_TYPES[c.type]}{'' if c.nullable else ' NOT NULL'}"
        for c in columns
    )
    return f"CREATE TABLE {quote_ident(schema)}.{quote_ident(table)} ({body})"


async def create_staging_table(
    conn: asyncpg.Connection, schema: str, table: str, columns: Sequence[Column]
) -> None:
    """Create ``schema.table`` with the dataset's typed columns (fails if it exists).

    The table is a normal (logged) table on purpose: :func:`swap_in` makes it the dataset, and
    an unlogged dataset would be emptied by a crash and missing on replicas.
    """
    await conn.execute(create_table_sql(schema, table, columns))


def _pg_encoding(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    try:
        return _PG_ENCODINGS[name]
    except KeyError:
        raise ValueError(f"encoding {encoding!r} is not supported for loading") from None


def _check_options(options: CsvOptions) -> None:
    named = {"delimiter": options.delimiter, "quote": options.quote}
    if options.escape is not None:
        named["escape"] = options.escape
    for what, char in named.items():
        if len(char) != 1 or not char.isascii() or char in "\r\n":
            raise ValueError(f"CSV {what} must be one ASCII character other than CR/LF")
    if options.delimiter == options.quote:
        raise ValueError("CSV delimiter and quote must differ")
    _pg_encoding(options.encoding)


class _Meter:
    """What :func:`_stream` notices on the way: bytes, whether a ``\\.`` line may occur, and a
    line longer than ``limits.max_record_bytes`` (PostgreSQL would buffer it whole, up to 1 GB:
    the file fails with a :class:`RowError` instead, and COPY is aborted)."""

    __slots__ = ("bytes", "file_name", "line_bytes", "lines", "marker", "max_line", "tail")

    def __init__(self, file_name: str = "") -> None:
        self.bytes = 0
        self.marker = False
        self.tail = b"\n"  # the file starts a line, as if a line break came before it
        self.file_name = file_name
        self.max_line = limits.current().max_record_bytes
        self.lines = 0  # line breaks seen
        self.line_bytes = 0  # bytes since the last one

    def _check_lines(self, chunk: bytes) -> None:
        first = chunk.find(b"\n")
        if first < 0:
            self.line_bytes += len(chunk)
            long_line = self.lines if self.line_bytes > self.max_line else None
        elif self.line_bytes + first > self.max_line:
            long_line = self.lines
        else:
            start = limits.long_line_start(chunk, first, self.max_line)
            long_line = None if start is None else self.lines + chunk.count(b"\n", 0, start)
            self.lines += chunk.count(b"\n")
            self.line_bytes = len(chunk) - chunk.rfind(b"\n") - 1
        if long_line is not None:
            raise RowError(
                self.file_name,
                f"the line is longer than {self.max_line} bytes"
                " (LOADBAY_LOADER_MAX_RECORD_BYTES); the file is not loaded",
                line=long_line + 1,
            )

    def see(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        self._check_lines(chunk)
        # A memchr over the chunk is nearly free, and most files have no backslash at all.
        if not self.marker and (b"\\" in chunk or b"\\" in self.tail):
            window = self.tail + chunk[:3]  # a marker straddling the previous chunk
            self.marker = any(m in window for m in END_MARKERS) or (
                b"\\." in chunk and any(m in chunk for m in END_MARKERS)
            )
        self.tail = (self.tail + chunk[-3:])[-3:]

    def ends_with_marker(self) -> bool:
        return self.tail[-3:] in (b"\n\\.", b"\r\\.")


async def _stream(first: bytes, rest: AsyncIterator[bytes], meter: _Meter) -> AsyncIterator[bytes]:
    meter.see(first)
    yield first
    async for chunk in rest:
        if chunk:
            meter.see(chunk)
            yield chunk


async def copy_csv(
    conn: asyncpg.Connection,
    schema: str,
    table: str,
    columns: Sequence[Column],
    options: CsvOptions,
    chunks: AsyncIterator[bytes],
    *,
    file_name: str,
    reopen: Callable[[], AsyncIterator[bytes]] | None = None,
) -> CopyResult:
    """Stream one CSV file into ``schema.table`` with ``COPY ... FORMAT csv, HEADER``.

    ``chunks`` is consumed and closed. Only the header line is read in Python: it must name
    exactly the dataset's ``columns`` (ignoring case and surrounding spaces, in any order; a
    UTF-8 byte-order mark is dropped), and COPY gets the column list in the header's order.
    Everything else goes to PostgreSQL unchanged, which types and checks every value. (With
    ``options.header=False`` the fields are taken in the order of ``columns``.)

    Values: an unquoted empty field is NULL; a quoted empty string ``""`` is an empty string in
    a ``text`` column and NULL in every other type (``FORCE_NULL``: no other type has an empty
    value, and files written with every field quoted are common). A NULL in a column with
    ``nullable=False`` fails the file.

    Errors: a file that cannot be loaded raises :class:`RowError` (file, line, column, value,
    reason); infrastructure errors (connection, missing table, the source's own errors)
    propagate as they are. The COPY runs in a savepoint (in its own transaction when the caller
    has none), so a failed file leaves nothing behind and the caller's transaction usable.

    Lines count from 1 = the file's first line (the header, if any). Without ``reopen``,
    ``line`` is PostgreSQL's count, which is the record's line except for a record holding
    quoted line breaks, where it is the record's *last* line (for an unterminated quote: the
    end of the file). Given ``reopen`` (a callable returning the same bytes again, e.g. a new
    S3 GET), after a failure the file is re-read - up to the failing record only - to report
    the line where that record *starts*, counted as an editor counts lines.

    A line holding only ``\\.`` fails the file too: PostgreSQL before 18 would take it for the
    end of the data and silently skip the rest (a cheap byte search on the stream spots it;
    with ``reopen`` the file is re-read to confirm it is not inside a quoted field).

    Note that asyncpg keeps reading ``chunks`` to the end even after PostgreSQL has rejected a
    row (the server drops the rest), so a bad row early in a large file still costs reading
    the whole file, though never more memory.
    """
    _check_columns(columns)
    _check_options(options)
    quote_ident(schema)  # validate only: asyncpg quotes the names itself
    quote_ident(table)
    meter = _Meter(file_name)
    source: AsyncIterator[bytes] | None = None
    try:
        if options.header:
            head, names = await read_header(chunks, options, file_name)
            copy_columns = match_header(names, columns, file_name)
        else:
            head = await anext(chunks, b"")
            if not head:
                raise RowError(file_name, "file is empty (0 bytes)")
            copy_columns = [c.name for c in columns]
        force_null = [c.name for c in columns if c.type != "text"]
        source = _stream(head, chunks, meter)
        try:
            # A savepoint inside the caller's transaction (its own transaction otherwise): a
            # file that fails leaves nothing behind and the caller's transaction usable.
            async with conn.transaction():
                # watched: a lost connection fails the COPY in seconds instead of never.
                status: str = await watched(
                    conn,
                    conn.copy_to_table(
                        table,
                        schema_name=schema,
                        source=source,
                        columns=copy_columns,
                        format="csv",
                        header=options.header,
                        delimiter=options.delimiter,
                        quote=options.quote,
                        escape=options.escape,
                        encoding=_pg_encoding(options.encoding),
                        force_null=force_null or None,
                    ),
                )
                if meter.marker or meter.ends_with_marker():
                    await _check_end_marker(file_name, options, reopen)
        except asyncpg.PostgresError as exc:
            error = row_error_from_copy(exc, file=file_name, encoding=options.encoding)
            if error is None:
                raise
            if reopen is not None and error.line is not None:
                error = await _place(error, reopen, options, copy_columns, exc)
            raise error from exc
    finally:
        await aclose(source)
        await aclose(chunks)
    return CopyResult(rows=int(status.rsplit(" ", 1)[-1]), bytes=meter.bytes)


async def _check_end_marker(
    file_name: str, options: CsvOptions, reopen: Callable[[], AsyncIterator[bytes]] | None
) -> None:
    """Fail a file in which PostgreSQL may have taken a ``\\.`` line for the end of the data.

    PostgreSQL before 18 stops a CSV COPY at a line holding only ``\\.`` and ignores the rest
    of the file without an error. The stream only spotted such bytes; with ``reopen`` the file
    is re-read to tell a real ``\\.`` record from one inside a quoted field.
    """
    reason = (
        "a line holding only \\. (PostgreSQL reads it as the end of the data and would"
        ' silently skip the rest of the file); write the value quoted, as "\\."'
    )
    if reopen is None:
        raise RowError(file_name, reason)
    span = await find_end_marker(reopen(), quote=options.quote, escape=options.escape)
    if span is not None:
        raise RowError(file_name, reason, line=span.first_line)


async def _place(
    error: RowError,
    reopen: Callable[[], AsyncIterator[bytes]],
    options: CsvOptions,
    columns: Sequence[str],
    cause: asyncpg.PostgresError,
) -> RowError:
    """The slow path: re-read the file to the failing record and report where it starts (and,
    for an encoding error, which column holds the bad bytes)."""
    assert error.line is not None
    try:
        span = await locate_record(reopen(), error.line, quote=options.quote, escape=options.escape)
        if span is None:
            return error
        placed = error.at_line(span.first_line)
        if error.column is None and isinstance(
            cause, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError
        ):
            record = await read_span(reopen(), span.start, span.end)
            found = undecodable_field(
                record,
                columns,
                delimiter=options.delimiter,
                quote=options.quote,
                escape=options.escape,
                encoding=options.encoding,
            )
            if found is not None:
                column, value = found
                placed = RowError(
                    error.file, error.reason, line=placed.line, column=column, value=value
                )
        return placed
    except Exception:
        # Re-reading is best effort: keep PostgreSQL's line rather than hide the data error
        # behind, say, a dropped connection to object storage.
        return error


async def swap_in(conn: asyncpg.Connection, schema: str, target: str, staging: str) -> None:
    """Make ``schema.staging`` the dataset ``schema.target``, dropping the old table if any.

    Must run inside the caller's transaction (raises ``RuntimeError`` otherwise), normally the
    one that filled the staging table.

    Why readers see the old rows or the new ones, never a mix or an error: ``DROP TABLE`` and
    ``ALTER TABLE ... RENAME`` take ACCESS EXCLUSIVE locks held to commit. A query already
    reading the old table holds ACCESS SHARE on it, so the drop waits for it to finish: it reads
    all the old rows. A query starting during the swap blocks on the lock; when the swap
    commits, PostgreSQL re-resolves the table name after getting the lock
    (``RangeVarGetRelidExtended`` retries on the invalidation the commit sends), so it reads the
    new table, whose rows are committed at that same instant. Caveats: a REPEATABLE READ or
    SERIALIZABLE transaction whose snapshot predates the swap and that first touches the table
    after it sees the new table but not its rows (DDL is not MVCC-safe, as with TRUNCATE); a
    long-running reader delays the swap and every reader queued behind it (set
    ``lock_timeout`` in the transaction if that matters); grants, views and foreign keys on the
    old table are not carried over (a view makes the drop fail).
    """
    s, t, st = quote_ident(schema), quote_ident(target), quote_ident(staging)
    if not conn.is_in_transaction():
        raise RuntimeError("swap_in must run inside a transaction (conn.transaction())")
    await conn.execute(f"DROP TABLE IF EXISTS {s}.{t}; ALTER TABLE {s}.{st} RENAME TO {t}")


async def append_from(
    conn: asyncpg.Connection, schema: str, target: str, staging: str, columns: Sequence[Column]
) -> None:
    """Add the rows of ``schema.staging`` to ``schema.target`` (created if missing) and drop
    the staging table, in the caller's transaction: readers see all the new rows or none."""
    if not conn.is_in_transaction():
        raise RuntimeError("append_from must run inside a transaction (conn.transaction())")
    s, t, st = quote_ident(schema), quote_ident(target), quote_ident(staging)
    await conn.execute(create_table_sql(schema, target, columns).replace(
        "CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1
    ))  # fmt: skip
    names = ", ".join(quote_ident(c.name) for c in columns)
    await conn.execute(f"INSERT INTO {s}.{t} ({names}) SELECT {names} FROM {s}.{st}")
    await conn.execute(f"DROP TABLE {s}.{st}")
