"""How much of a hostile file the loader will read before it gives up on the file.

The limits are read where the bytes are (decompression, the CSV cutters, the RDF parsers),
deep under three entry points (bulk loads, reloads, workspace loads), so they are process-wide:
the loader service sets them once from its settings (``LOADBAY_LOADER_MAX_*``) at start-up.
Each one fails the file with a message naming the file and the limit, never the process.
"""

from __future__ import annotations

from dataclasses import dataclass

# PostgreSQL tables take at most 1,600 columns; a feed's staging table adds a record number,
# and the graph merge builds a row per property, so graph CSV headers stop well below that.
POSTGRES_MAX_COLUMNS = 1600


@dataclass(frozen=True)
class InputLimits:
    # Bytes one compressed file may expand to.
    max_decompressed_bytes: int = 64 << 30
    # Output:input ratio a compressed file may reach once past `ratio_grace_bytes` of output
    # (gzip cannot exceed about 1032:1; ordinary CSV and RDF compress 5-50:1).
    max_compression_ratio: int = 1000
    ratio_grace_bytes: int = 16 << 20
    # Bytes one line or CSV record may take (nothing is buffered past it).
    max_record_bytes: int = 16 << 20
    # Columns a CSV header may have (graph CSV and workspace loads).
    max_columns: int = 1000


class UnreadableFile(ValueError):
    """A file that cannot be read as its format: it fails, the loader goes on."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class InputLimitExceeded(UnreadableFile):
    """A file went past one of the limits; the message names the file and the limit."""


_current = InputLimits()


def current() -> InputLimits:
    return _current


def configure(limits: InputLimits) -> None:
    """Set the process's limits (the service does it at start-up; tests lower them)."""
    global _current
    if limits.max_columns >= POSTGRES_MAX_COLUMNS:
        raise ValueError(f"max_columns must be below {POSTGRES_MAX_COLUMNS} (PostgreSQL's limit)")
    _current = limits


def long_line_start(chunk: bytes, first: int, max_bytes: int) -> int | None:
    """Where the first line longer than `max_bytes` starts in `chunk` after its first line
    break at `first` (the line that runs on past the chunk included), or None. Cheap unless
    the chunk is longer than the limit (only then can a whole line inside it be too long)."""
    start = first + 1
    if len(chunk) - start > max_bytes:
        while (nl := chunk.find(b"\n", start)) >= 0:
            if nl - start > max_bytes:
                return start
            start = nl + 1
        if len(chunk) - start > max_bytes:
            return start
    return None
