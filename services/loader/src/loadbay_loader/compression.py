"""Single-file `.gz` and `.bz2` feeds, decompressed as they stream (Neptune accepts both;
`.tar`, `.tar.gz` and `.tgz` archives are refused)."""

from __future__ import annotations

import bz2
import zlib
from collections.abc import AsyncIterator

ARCHIVES = (".tar", ".tar.gz", ".tgz")


class UnsupportedArchive(ValueError):
    pass


def check_supported(key: str) -> None:
    if key.lower().endswith(ARCHIVES):
        raise UnsupportedArchive(
            f"{key}: archives (.tar, .tar.gz, .tgz) are not supported; compress each file"
            " on its own with gzip or bzip2"
        )


async def decompressed(key: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The feed's bytes, gunzipped or bunzipped by its name's ending, with flat memory."""
    lowered = key.lower()
    if lowered.endswith(".gz"):
        inflater = zlib.decompressobj(wbits=47)  # gzip header, and concatenated members
        async for chunk in chunks:
            while chunk:
                out = inflater.decompress(chunk)
                if out:
                    yield out
                if inflater.eof:  # another gzip member may follow
                    chunk = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=47)
                else:
                    chunk = b""
        tail = inflater.flush()
        if tail:
            yield tail
    elif lowered.endswith(".bz2"):
        unzipper = bz2.BZ2Decompressor()
        async for chunk in chunks:
            while chunk:
                out = unzipper.decompress(chunk)
                if out:
                    yield out
                if unzipper.eof:
                    chunk = unzipper.unused_data
                    unzipper = bz2.BZ2Decompressor()
                else:
                    chunk = b""
    else:
        async for chunk in chunks:
            yield chunk
