"""Streamed copies from a remote bucket into loadbay's object store.

An object is read from the remote `get_object` body one part at a time and written with
`upload_part`, so at most one part per copy is in memory, whatever the object's size; small
objects (up to one part) are a single `put_object`. Runs bound how many copies overlap.
"""

from __future__ import annotations

from typing import Any


async def _read_part(body: Any, size: int) -> bytes:
    """Up to `size` bytes: the stream may return less per read, so fill the part."""
    chunks: list[bytes] = []
    missing = size
    while missing > 0:
        chunk = await body.read(missing)
        if not chunk:
            break
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


async def copy_object(
    remote: Any, src_bucket: str, src_key: str, local: Any, dest_bucket: str, dest_key: str,
    *, size: int, part_size: int,
) -> str:  # fmt: skip
    """Copy one object; returns the copy's ETag (unquoted)."""
    response = await remote.get_object(Bucket=src_bucket, Key=src_key)
    async with response["Body"] as body:
        if size <= part_size:
            data = await _read_part(body, part_size)
            put = await local.put_object(Bucket=dest_bucket, Key=dest_key, Body=data)
            return str(put["ETag"]).strip('"')
        upload = await local.create_multipart_upload(Bucket=dest_bucket, Key=dest_key)
        upload_id = upload["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            while chunk := await _read_part(body, part_size):
                number = len(parts) + 1
                part = await local.upload_part(
                    Bucket=dest_bucket, Key=dest_key, UploadId=upload_id, PartNumber=number,
                    Body=chunk,
                )  # fmt: skip
                parts.append({"PartNumber": number, "ETag": part["ETag"]})
                del chunk
            done = await local.complete_multipart_upload(
                Bucket=dest_bucket, Key=dest_key, UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )  # fmt: skip
        except BaseException:
            await local.abort_multipart_upload(Bucket=dest_bucket, Key=dest_key, UploadId=upload_id)
            raise
    return str(done["ETag"]).strip('"')
