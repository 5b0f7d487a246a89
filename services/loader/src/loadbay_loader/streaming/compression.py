"""Single-file `.gz` and `.bz2` feeds, decompressed as they stream (Neptune accepts both;
`.tar`, `.tar.gz` and `.tgz` archives are refused).

Every path that reads a compressed file comes through :func:`decompressed`, which hands out
at most :data:`OUT_CHUNK` bytes at a time (a 1 MiB chunk of a bomb would otherwise inflate to
1 GiB at once) and guards the output: past ``max_decompressed_bytes``, or past
``max_compression_ratio`` once ``ratio_grace_bytes`` are out, the file fails with
:class:`DecompressionLimit` naming it and the limit.
"""

from __future__ import annotations

import bz2
import zlib
from collections.abc import AsyncIterator

from loadbay_loader.streaming import limits
from loadbay_loader.streaming.limits import InputLimitExceeded, UnreadableFile

ARCHIVES = (".tar", ".tar.gz", ".tgz")
OUT_CHUNK = 1 << 20


class UnsupportedArchive(ValueError):
    pass


class DecompressionLimit(InputLimitExceeded):
    pass


class CorruptFile(UnreadableFile):
    pass


def check_supported(key: str) -> None:
    if key.lower().endswith(ARCHIVES):
        raise UnsupportedArchive(
            f"{key}: archives (.tar, .tar.gz, .tgz) are not supported; compress each file"
            " on its own with gzip or bzip2"
        )


class OutputGuard:
    """Counts a decompressor's input and output and stops a bomb (also used for .zip members)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.limits = limits.current()
        self.bytes_in = 0
        self.bytes_out = 0

    def took(self, n: int) -> None:
        self.bytes_in += n

    def gave(self, n: int) -> None:
        self.bytes_out += n
        lim = self.limits
        if self.bytes_out > lim.max_decompressed_bytes:
            raise DecompressionLimit(
                self.name,
                "decompressed, the file is larger than the limit of"
                f" {lim.max_decompressed_bytes} bytes (LOADBAY_LOADER_MAX_DECOMPRESSED_BYTES)",
            )
        if (
            self.bytes_out > lim.ratio_grace_bytes
            and self.bytes_out > lim.max_compression_ratio * max(self.bytes_in, 1)
        ):
            raise DecompressionLimit(
                self.name,
                f"{self.bytes_in} compressed bytes expanded to more than {self.bytes_out}"
                f" bytes, past the limit of {lim.max_compression_ratio}:1"
                " (LOADBAY_LOADER_MAX_COMPRESSION_RATIO): a decompression bomb?",
            )


async def decompressed(key: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The feed's bytes, gunzipped or bunzipped by its name's ending, with flat memory."""
    lowered = key.lower()
    if lowered.endswith(".gz"):
        inflate = _gunzipped
    elif lowered.endswith(".bz2"):
        inflate = _bunzipped
    else:
        async for chunk in chunks:
            yield chunk
        return
    guard = OutputGuard(key)
    kind = "gzip" if inflate is _gunzipped else "bzip2"
    try:
        async for out in inflate(chunks, guard):
            guard.gave(len(out))
            yield out
    except (zlib.error, OSError, EOFError) as exc:  # bz2 says OSError("Invalid data stream")
        raise CorruptFile(key, f"not a valid {kind} file: {exc}") from exc


async def _gunzipped(chunks: AsyncIterator[bytes], guard: OutputGuard) -> AsyncIterator[bytes]:
    inflater = zlib.decompressobj(wbits=47)  # gzip header, and concatenated members
    midway = False  # a member has begun and not ended
    async for chunk in chunks:
        guard.took(len(chunk))
        data = chunk
        while True:
            midway = midway or bool(data)
            out = inflater.decompress(data, OUT_CHUNK)
            if out:
                yield out
            if inflater.eof:  # another gzip member may follow
                data = inflater.unused_data
                inflater = zlib.decompressobj(wbits=47)
                midway = False
                if not data:
                    break
            else:
                data = inflater.unconsumed_tail  # left when the output reached OUT_CHUNK
                if not data and len(out) < OUT_CHUNK:
                    break
    if tail := inflater.flush():  # at most a window's worth
        yield tail
    if midway:
        raise EOFError("the file ends inside a compressed stream (truncated?)")


async def _bunzipped(chunks: AsyncIterator[bytes], guard: OutputGuard) -> AsyncIterator[bytes]:
    unzipper = bz2.BZ2Decompressor()
    midway = False
    async for chunk in chunks:
        guard.took(len(chunk))
        data = chunk
        while True:
            midway = midway or bool(data)
            out = unzipper.decompress(data, OUT_CHUNK)  # keeps unread input itself
            data = b""
            if out:
                yield out
            if unzipper.eof:
                data = unzipper.unused_data
                unzipper = bz2.BZ2Decompressor()
                midway = False
                if not data:
                    break
            elif unzipper.needs_input:
                break
    if midway:
        raise EOFError("the file ends inside a compressed stream (truncated?)")
