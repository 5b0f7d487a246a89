"""Reading a workspace load's source file: the object from S3, unpacked (``.gz``, ``.zip``
with one CSV inside, ``.parquet`` turned into CSV by pyarrow batch by batch) into CSV chunks
for COPY. A ``.zip`` or ``.parquet`` is spooled to a temporary file first (both formats keep
their index at the end); nothing is held in memory whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import tempfile
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import IO

from botocore.exceptions import BotoCoreError, ClientError

from loadbay_loader.streaming import objects
from loadbay_loader.streaming.compression import OutputGuard, decompressed
from loadbay_loader.streaming.limits import UnreadableFile
from loadbay_loader.warehouse import tabular
from loadbay_loader.warehouse.copy_errors import RowError
from loadbay_loader.warehouse.csv_header import read_header
from loadbay_loader.workspace.shape import Shape, header_columns
from loadbay_platform.s3 import ObjectStore

#: A source: the raw bytes of the object under ``key`` (the handler's reads S3).
Opener = Callable[[str], AsyncIterator[bytes]]
CSV = tabular.CsvOptions()  # ADD v2 source files: comma-separated UTF-8 with a header line
SPOOL_CHUNK = 1 << 20
PARQUET_BATCH_ROWS = 65_536


class SourceUnavailable(Exception):
    """The source object cannot be read: deleted between listing and loading, no access,
    object storage unreachable. ADD v2 counts that as a failed load like any other."""

    def __init__(self, location: str, detail: str, *, gone: bool = False) -> None:
        hint = "; it may have been deleted after the distribution listed it" if gone else ""
        super().__init__(f"{location}: cannot read the source file ({detail}){hint}")


def s3_opener(s3: ObjectStore, bucket: str) -> Opener:
    """Read objects of ``bucket`` with an aiobotocore client; an object that is gone, or
    that the loader may not read, is a :class:`SourceUnavailable`."""

    async def open_object(key: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in objects.s3_chunks(s3, bucket, key):
                yield chunk
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "error"))
            gone = code in ("NoSuchKey", "404", "NotFound")
            raise SourceUnavailable(f"s3://{bucket}/{key}", code, gone=gone) from exc
        except BotoCoreError as exc:
            raise SourceUnavailable(f"s3://{bucket}/{key}", str(exc)) from exc

    return open_object


def file_kind(key: str) -> str:
    name = key.lower()
    if name.endswith((".parquet", ".parquet.gz")):
        return "parquet"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(".gz"):
        return "gz"  # gzipped CSV
    return "csv" if name.endswith(".csv") else "unsupported"


@contextlib.asynccontextmanager
async def csv_reader(
    open_object: Opener, key: str
) -> AsyncIterator[Callable[[], AsyncIterator[bytes]]]:
    """A callable that streams the file's CSV bytes, as often as asked (a failed COPY reads
    the file again to place the error). .zip and .parquet need random access: the object is
    spooled to a temporary file on disk once, never held in memory."""
    kind = file_kind(key)
    if kind == "csv":
        yield lambda: open_object(key)
    elif kind == "gz":
        yield lambda: _unpacked(key, decompressed(key, open_object(key)))
    elif kind in ("zip", "parquet"):
        with tempfile.TemporaryFile(prefix="loadbay-ws-") as spool:
            raw = open_object(key)
            if key.lower().endswith(".gz"):
                raw = _unpacked(key, decompressed(key, raw))
            await _spool(raw, spool)
            if kind == "zip":
                member = await asyncio.to_thread(_zip_member, spool, key)
                yield lambda: _threaded(key, _zip_chunks(spool, member, key))
            else:
                yield lambda: _threaded(key, _parquet_csv(spool, key))
    else:
        raise RowError(key, "unsupported file type: expected .csv, .gz, .zip or .parquet")


async def _spool(chunks: AsyncIterator[bytes], spool: IO[bytes]) -> None:
    async for chunk in objects.prefetch(chunks):
        await asyncio.to_thread(spool.write, chunk)
    await asyncio.to_thread(spool.flush)


async def _unpacked(key: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except (zlib.error, EOFError) as exc:
        raise RowError(key, f"not a valid gzip file: {exc}") from exc
    except UnreadableFile as exc:
        raise RowError(key, exc.reason) from exc


def _zip_member(spool: IO[bytes], key: str) -> str:
    try:
        with zipfile.ZipFile(spool) as archive:
            members = [
                i.filename
                for i in archive.infolist()
                if not i.is_dir() and not i.filename.startswith("__MACOSX/")
            ]
    except zipfile.BadZipFile as exc:
        raise RowError(key, f"not a valid zip archive: {exc}") from exc
    if len(members) != 1 or not members[0].lower().endswith(".csv"):
        raise RowError(
            key, f"a .zip must hold exactly one .csv file; it holds {', '.join(members) or 'none'}"
        )
    return members[0]


def _zip_chunks(spool: IO[bytes], member: str, key: str) -> Iterator[bytes]:
    guard = OutputGuard(key)  # a zip bomb fails like a gzip one
    with zipfile.ZipFile(spool) as archive, archive.open(member) as data:
        guard.took(archive.getinfo(member).compress_size)
        while chunk := data.read(SPOOL_CHUNK):
            guard.gave(len(chunk))
            yield chunk


def _parquet_csv(spool: IO[bytes], key: str) -> Iterator[bytes]:
    """The Parquet file as CSV (header first), one record batch at a time, in C++."""
    try:
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise RowError(
            key,
            "Parquet files need the loader's parquet extra, which is not installed"
            " (pip install 'loadbay-loader[parquet]')",
        ) from exc
    spool.seek(0)
    parquet = pq.ParquetFile(spool)
    out = io.BytesIO()
    pa_csv.write_csv(parquet.schema_arrow.empty_table(), out)
    yield out.getvalue()
    options = pa_csv.WriteOptions(include_header=False)
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        out = io.BytesIO()
        pa_csv.write_csv(batch, out, options)
        yield out.getvalue()


async def _threaded(key: str, blocking: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Run a blocking reader in worker threads, one chunk at a time."""
    try:
        while True:
            chunk = await asyncio.to_thread(next, blocking, None)
            if chunk is None:
                return
            yield chunk
    except RowError:
        raise
    except UnreadableFile as exc:
        raise RowError(key, exc.reason) from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, ValueError, OSError) as exc:
        # zip: bad CRC, encryption; pyarrow: ArrowInvalid (a ValueError), ArrowIOError,
        # ArrowNotImplementedError (a NotImplementedError, so a RuntimeError).
        raise RowError(key, f"cannot read the file: {exc}") from exc
    finally:
        close = getattr(blocking, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


@dataclass
class Part:
    """One part of a source file, its header read: the bytes read so far (``head``, header
    line included), the rest still to come (``chunks``, read ahead), the header's columns as
    the dataset types them and those the dataset does not have (``extras``), and ``reopen``
    to read the part again from its start."""

    key: str
    head: bytes
    chunks: AsyncIterator[bytes]
    columns: list[tabular.Column]
    extras: list[str]
    reopen: Callable[[], AsyncIterator[bytes]]


@contextlib.asynccontextmanager
async def open_part(
    open_object: Opener, key: str, shape: Shape, nullable: dict[str, bool]
) -> AsyncIterator[Part]:
    """Open one part and read its header (tabular's own reader, so the header is read exactly
    as copy_csv reads it); a header the dataset cannot take raises RowError. The read-ahead
    stops when the block ends, whoever consumed the chunks."""
    async with csv_reader(open_object, key) as reader:
        chunks = objects.prefetch(reader())
        try:
            head, names = await read_header(chunks, CSV, key)
            columns, extras = header_columns(names, shape, nullable, key)
            yield Part(key, head, chunks, columns, extras, reader)
        finally:
            await objects.aclose(chunks)
