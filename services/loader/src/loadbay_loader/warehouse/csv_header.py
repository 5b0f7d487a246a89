"""Reading a CSV file's header line from its first chunks, and matching it to a dataset's
columns: the only part of a tabular file Python parses (tabular.copy_csv leaves the rest to
PostgreSQL)."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from loadbay_loader.warehouse.copy_errors import CsvRecordScanner, RowError

if TYPE_CHECKING:  # tabular imports this module
    from loadbay_loader.warehouse.tabular import Column, CsvOptions

_UTF8_BOM = b"\xef\xbb\xbf"
#: The header line must end within this many bytes.
MAX_HEADER_BYTES = 1 << 20
_HEADER_SLICE = 4096


async def read_header(
    chunks: AsyncIterator[bytes], options: CsvOptions, file_name: str
) -> tuple[bytes, list[str]]:
    """Read just enough of the file for its first record; return (bytes read, header names)."""
    scanner = CsvRecordScanner(options.quote, options.escape)
    buffered = bytearray()
    end: int | None = None
    while end is None:
        chunk = await anext(chunks, None)
        if chunk is None:
            last = scanner.finish()
            if last is None:
                break
            if last.unterminated:
                raise RowError(file_name, "unterminated quoted field in the header line", line=1)
            end = last.end
            break
        buffered += chunk
        # Feed the scanner small slices: only the first record matters, and scanning a whole
        # first chunk of a million-row file would cost as much as streaming the rest.
        for i in range(0, len(chunk), _HEADER_SLICE):
            spans = scanner.feed(chunk[i : i + _HEADER_SLICE])
            if spans:
                end = spans[0].end
                break
        if end is None and len(buffered) > MAX_HEADER_BYTES:
            raise RowError(
                file_name,
                f"no end of the header line in the first {MAX_HEADER_BYTES} bytes"
                " (an unterminated quote?)",
                line=1,
            )
    if not buffered:
        raise RowError(file_name, "file is empty (0 bytes, no header line)")
    raw = bytes(buffered[:end])
    utf8 = codecs.lookup(options.encoding).name in ("utf-8", "utf-8-sig")
    if utf8 and raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM) :]
    try:
        text = raw.decode(options.encoding)
    except UnicodeDecodeError as exc:
        raise RowError(
            file_name, f"the header line is not valid {options.encoding}: {exc.reason}", line=1
        ) from None
    if not text.strip():
        raise RowError(file_name, "file is empty: no header line", line=1)
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=options.delimiter,
        quotechar=options.quote,
        escapechar=options.escape if options.escape != options.quote else None,
        doublequote=options.escape in (None, options.quote),
        skipinitialspace=True,
        strict=False,
    )
    names = [name.strip() for name in next(reader, [])]
    return bytes(buffered), names


def match_header(names: list[str], columns: Sequence[Column], file_name: str) -> list[str]:
    """The dataset's column names in the header's order, or a RowError saying what differs."""
    by_key = {c.name.lower(): c.name for c in columns}
    ordered: list[str] = []
    seen: set[str] = set()
    unexpected: list[str] = []
    duplicated: list[str] = []
    for name in names:
        key = name.lower()
        if key in seen:
            duplicated.append(name)
        elif key in by_key:
            ordered.append(by_key[key])
        else:
            unexpected.append(name)
        seen.add(key)
    missing = [c.name for c in columns if c.name.lower() not in seen]
    if not (missing or unexpected or duplicated):
        return ordered
    problems = []
    if missing:
        problems.append("missing " + ", ".join(repr(n) for n in missing))
    if unexpected:
        problems.append("unexpected " + ", ".join(repr(n) for n in unexpected))
    if duplicated:
        problems.append("repeated " + ", ".join(repr(n) for n in duplicated))
    raise RowError(
        file_name,
        "header does not match the dataset's columns: " + "; ".join(problems),
        line=1,
    )
