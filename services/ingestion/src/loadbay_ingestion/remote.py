"""The remote bucket of a connection: its S3 client, listing, and the connection test.

Two different clients are in play during a run: this one (the remote endpoint, with the
connection's access keys or, for `bucket_policy` connections, loadbay's own principal from the
settings) and `Resources.s3` (loadbay's own object store, where LZ and DLZ live).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from loadbay_ingestion.crypto import SecretBox
from loadbay_ingestion.endpoints import ConnectionGuard, EndpointPolicy, check_endpoint
from loadbay_ingestion.errors import RemoteAccessError
from loadbay_ingestion.rows import Connection
from loadbay_ingestion.settings import IngestionSettings
from loadbay_platform.s3 import ObjectStore

ARCHIVED = frozenset({"GLACIER", "DEEP_ARCHIVE"})


async def check_remote_endpoint(connection: Connection, policy: EndpointPolicy) -> None:
    """Right before any request: the connection's own endpoint (user input) must still be one
    loadbay may reach (DNS may have changed, or the allowed endpoints). AWS endpoints (no
    endpoint_url) and the operator's `remote_endpoint_url` are trusted."""
    if connection.endpoint_url:
        await check_endpoint(connection.endpoint_url, policy)


def remote_client(
    connection: Connection, settings: IngestionSettings, box: SecretBox,
    policy: EndpointPolicy,
) -> AbstractAsyncContextManager[Any]:  # fmt: skip
    """The remote bucket's S3 client. Call `check_remote_endpoint` first."""
    if connection.access_type == "access_keys":
        # The table's CHECK: an access_keys connection has both sealed keys.
        assert connection.access_key_id_enc and connection.secret_access_key_enc
        key_id: str | None = box.open(connection.access_key_id_enc)
        secret: str | None = box.open(connection.secret_access_key_enc)
        endpoint = connection.endpoint_url
    else:
        key_id = settings.remote_access_key_id
        secret = (
            settings.remote_secret_access_key.get_secret_value()
            if settings.remote_secret_access_key
            else None
        )
        endpoint = connection.endpoint_url or settings.remote_endpoint_url
    return get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=connection.region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=AioConfig(
            max_pool_connections=max(10, settings.copy_concurrency * 2),
            retries={"max_attempts": 5, "mode": "standard"},
            s3={"addressing_style": "path" if endpoint else "auto"},
            # Each address the client connects to is checked as well (DNS rebinding).
            connector_args=(
                ConnectionGuard(policy).connector_args() if connection.endpoint_url else None
            ),
        ),
    )


def explain(exc: Exception, bucket: str, action: str) -> str:
    """A reason a person can act on, from an S3 error (never echoing credentials)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("InvalidAccessKeyId", "InvalidClientTokenId"):
            return (
                f"wrong credentials: the access key id is not known to the bucket's store ({code})"
            )
        if code == "SignatureDoesNotMatch":
            return f"wrong credentials: the secret access key does not match the key id ({code})"
        if code in ("NoSuchBucket", "404") and action == "list":
            return f"bucket {bucket!r} does not exist (NoSuchBucket)"
        if code in ("AccessDenied", "403", "AllAccessDisabled") or status == 403:
            return f"access denied: not allowed to {action} in bucket {bucket!r} ({code or 403})"
        if code == "InvalidObjectState":
            return "the object is archived (GLACIER/DEEP_ARCHIVE) and must be restored first"
        if code in (
            "PermanentRedirect",
            "AuthorizationHeaderMalformed",
            "IllegalLocationConstraintException",
        ):
            return f"bucket {bucket!r} is in another region than the connection says ({code})"
        return f"cannot {action} in bucket {bucket!r}: {code or status}"
    if isinstance(exc, BotoCoreError | OSError):
        return f"cannot reach the bucket's store to {action} in {bucket!r}: {type(exc).__name__}"
    return f"cannot {action} in bucket {bucket!r}: {type(exc).__name__}"


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    etag: str
    storage_class: str


async def list_objects(client: ObjectStore, bucket: str, prefix: str) -> list[RemoteObject]:
    """Every object under `prefix` (folder markers excluded); RemoteAccessError with the
    reason when the bucket cannot be listed."""
    found: list[RemoteObject] = []
    try:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue
                found.append(
                    RemoteObject(
                        key=obj["Key"],
                        size=int(obj["Size"]),
                        etag=str(obj.get("ETag", "")).strip('"'),
                        storage_class=obj.get("StorageClass") or "STANDARD",
                    )
                )
    except (ClientError, BotoCoreError, OSError) as exc:
        raise RemoteAccessError(explain(exc, bucket, "list")) from exc
    return found


async def test_access(client: ObjectStore, bucket: str) -> dict[str, Any]:
    """Whether the bucket can be listed and an object read, with the reason if not."""
    result: dict[str, Any] = {"bucket": bucket, "can_list": False, "can_read": False}
    try:
        page = await client.list_objects_v2(Bucket=bucket, MaxKeys=50)
    except (ClientError, BotoCoreError, OSError) as exc:
        return {**result, "ok": False, "reason": explain(exc, bucket, "list")}
    result["can_list"] = True
    readable = [
        o for o in page.get("Contents", [])
        if not o["Key"].endswith("/") and (o.get("StorageClass") or "STANDARD") not in ARCHIVED
    ]  # fmt: skip
    if not readable:
        return {
            **result, "can_read": None, "ok": True,
            "reason": "the bucket can be listed; it holds no readable object to test reading with",
        }  # fmt: skip
    key = readable[0]["Key"]
    try:
        response = await client.get_object(Bucket=bucket, Key=key, Range="bytes=0-0")
        async with response["Body"] as body:
            await body.read()
    except (ClientError, BotoCoreError, OSError) as exc:
        return {**result, "ok": False, "reason": explain(exc, bucket, f"read {key!r}")}
    return {**result, "can_read": True, "ok": True, "reason": None}
