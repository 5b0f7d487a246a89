"""Object storage: the calls loadbay makes (`ObjectStore`, a port any aiobotocore S3 client
fits) and the clients (aiobotocore), built from settings."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from loadbay_platform.settings import S3Settings


class ObjectStore(Protocol):
    """The S3 operations loadbay's code calls, with S3's own keyword arguments and answers.
    Domain code takes an ObjectStore, not `Any`, so what it needs from S3 is written down
    (and a call outside this list is a type error)."""

    async def get_object(self, **kwargs: Any) -> dict[str, Any]: ...
    async def head_object(self, **kwargs: Any) -> dict[str, Any]: ...
    async def put_object(self, **kwargs: Any) -> dict[str, Any]: ...
    async def copy_object(self, **kwargs: Any) -> dict[str, Any]: ...
    async def delete_object(self, **kwargs: Any) -> dict[str, Any]: ...
    async def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]: ...
    async def create_multipart_upload(self, **kwargs: Any) -> dict[str, Any]: ...
    async def upload_part(self, **kwargs: Any) -> dict[str, Any]: ...
    async def complete_multipart_upload(self, **kwargs: Any) -> dict[str, Any]: ...
    async def abort_multipart_upload(self, **kwargs: Any) -> dict[str, Any]: ...
    def get_paginator(self, operation_name: str) -> Any: ...


def s3_client(settings: S3Settings) -> AbstractAsyncContextManager[Any]:
    """An async context manager yielding an S3 client; open it once in the service lifespan."""
    secret = settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
    return get_session().create_client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=secret,
        config=AioConfig(
            max_pool_connections=20,
            retries={"max_attempts": 5, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )


class Readable(Protocol):
    async def read(self, size: int = -1) -> bytes: ...


async def upload_stream(
    s3: ObjectStore, bucket: str, key: str, source: Readable, *, part_size: int = 8 << 20
) -> tuple[str, int]:
    """Upload from an async reader without holding it in memory (multipart when it is larger
    than one part). Returns the object's ETag (unquoted) and size."""
    first = await source.read(part_size)
    second = await source.read(part_size) if len(first) == part_size else b""
    if not second:
        response = await s3.put_object(Bucket=bucket, Key=key, Body=first)
        return str(response["ETag"]).strip('"'), len(first)
    upload = await s3.create_multipart_upload(Bucket=bucket, Key=key)
    upload_id = upload["UploadId"]
    parts: list[dict[str, Any]] = []
    size = 0
    try:
        chunk = first
        while chunk:
            number = len(parts) + 1
            part = await s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
            )
            parts.append({"PartNumber": number, "ETag": part["ETag"]})
            size += len(chunk)
            chunk, second = (second, b"") if second else (await source.read(part_size), b"")
        done = await s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        await s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return str(done["ETag"]).strip('"'), size
