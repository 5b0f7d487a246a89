"""The bucket watcher: lands files for object stores that send no event notifications.

It lists the LZ bucket every few seconds and publishes `file.landed` (through the outbox) for
each object version it has not reported yet. Within one listing, `_SUCCESS` markers are
reported after the data files, so a batch's files are pending before its reload starts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from loadbay_contracts import FileLanded
from loadbay_platform import outbox
from loadbay_reload import repository
from loadbay_reload.landing import SUCCESS_MARKER

log = logging.getLogger(__name__)


async def scan_once(pool: asyncpg.Pool, s3: Any, bucket: str, service: str) -> int:
    """Report every new object version in `bucket`; returns how many were reported."""
    async with pool.acquire() as conn:
        known = await repository.known_objects(conn, bucket)
    new: list[dict[str, Any]] = []
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            etag = obj["ETag"].strip('"')
            if known.get(obj["Key"]) != etag and not obj["Key"].endswith("/"):
                new.append({**obj, "ETag": etag})
    new.sort(key=lambda o: (o["Key"].rsplit("/", 1)[-1] == SUCCESS_MARKER, o["Key"]))
    for obj in new:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(
                conn,
                FileLanded(
                    bucket=bucket,
                    key=obj["Key"],
                    size=obj["Size"],
                    etag=obj["ETag"],
                    landed_at=obj["LastModified"],
                    source="watcher",
                ),
                service=service,
            )
            await repository.remember_object(conn, bucket, obj["Key"], obj["ETag"])
    return len(new)


async def watch(pool: asyncpg.Pool, s3: Any, bucket: str, service: str, interval_s: float) -> None:
    while True:
        try:
            await scan_once(pool, s3, bucket, service)
        except Exception:  # a failed scan is retried at the next tick; never stop watching
            log.exception("bucket watcher: scanning %s failed", bucket)
        await asyncio.sleep(interval_s)
