"""Source objects as streams of bytes: read from S3 in bounded chunks, and read ahead so a
download overlaps the load that consumes it. Memory stays at a few chunks whatever the size."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from loadbay_platform.s3 import ObjectStore


async def aclose(iterator: object) -> None:
    """Close an async iterator if it can be closed (an async generator, a prefetch)."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


async def prefetch(chunks: AsyncIterator[bytes], depth: int = 4) -> AsyncIterator[bytes]:
    """Read ``chunks`` ahead in a task, so a download overlaps the ``COPY`` that consumes it.

    At most ``depth`` chunks wait in the queue (plus one in the reader's hands), so memory
    stays at about ``(depth + 2) * chunk size``. The source's errors are raised to the consumer
    in order; closing this iterator early cancels the reader and closes the source.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue(maxsize=depth)

    async def read_ahead() -> None:
        try:
            async for chunk in chunks:
                if chunk:
                    await queue.put(chunk)
        except Exception as exc:  # handed to the consumer, which raises it
            await queue.put(exc)
            return
        finally:
            with contextlib.suppress(Exception):
                await aclose(chunks)
        await queue.put(None)

    reader = asyncio.create_task(read_ahead())
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        if not reader.done():
            reader.cancel()
            await asyncio.wait([reader])


async def s3_chunks(
    s3_client: ObjectStore, bucket: str, key: str, chunk_size: int = 1 << 20
) -> AsyncIterator[bytes]:
    """Stream an object's bytes from an aiobotocore S3 client, at most ``chunk_size`` at a time.

    Chunks are whatever the HTTP stream has ready, up to ``chunk_size``; the body is closed when
    the iterator ends or is closed. A body cut short raises botocore's ``IncompleteReadError``
    (aiobotocore checks the length against Content-Length).
    """
    response = await s3_client.get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    try:
        while True:
            chunk: bytes = await body.read(chunk_size)
            if not chunk:
                return
            yield chunk
    finally:
        body.close()
