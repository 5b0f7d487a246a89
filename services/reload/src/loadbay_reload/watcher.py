"""The bucket watcher: lands files for object stores that send no event notifications.

It lists the LZ bucket every few seconds and publishes `file.landed` (through the outbox) for
each object version it has not reported yet. Within one listing, `_SUCCESS` markers are
reported after the data files, so a batch's files are pending before its reload starts. A key
that breaks the layout (a nested folder, `..`, a NUL) is dead-lettered on its own with the
reason (rejects.py), so it never stops the scan.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from loadbay_contracts import FileLanded
from loadbay_platform import outbox
from loadbay_platform.s3 import ObjectStore
from loadbay_reload import repository
from loadbay_reload.landing import (
    SUCCESS_MARKER,
    MalformedLandingPath,
    parse_landing_path,
    printable,
)
from loadbay_reload.rejects import Reject

log = logging.getLogger(__name__)


async def scan_once(
    pool: asyncpg.Pool, s3: ObjectStore, bucket: str, service: str, reject: Reject
) -> int:
    """Report every new object version in `bucket`; returns how many were reported."""
    async with pool.acquire() as conn:
        known = await repository.known_objects(conn, bucket)
    new: list[dict[str, Any]] = []
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            etag = obj["ETag"].strip('"')
            if known.get(printable(obj["Key"])) != etag and not obj["Key"].endswith("/"):
                new.append({**obj, "ETag": etag})
    new.sort(key=lambda o: (o["Key"].rsplit("/", 1)[-1] == SUCCESS_MARKER, o["Key"]))
    for obj in new:
        landed = FileLanded(
            bucket=bucket,
            key=obj["Key"],
            size=obj["Size"],
            etag=obj["ETag"],
            landed_at=obj["LastModified"],
            source="watcher",
        )
        async with pool.acquire() as conn, conn.transaction():
            try:
                parse_landing_path(obj["Key"])
            except MalformedLandingPath as exc:
                await reject(landed, str(exc))
            else:
                await outbox.enqueue(conn, landed, service=service)
            await repository.remember_object(conn, bucket, printable(obj["Key"]), obj["ETag"])
    return len(new)


async def watch(
    pool: asyncpg.Pool,
    s3: ObjectStore,
    bucket: str,
    service: str,
    reject: Reject,
    interval_s: float,
) -> None:
    while True:
        try:
            await scan_once(pool, s3, bucket, service, reject)
        except Exception:  # a failed scan is retried at the next tick; never stop watching
            log.exception("bucket watcher: scanning %s failed", bucket)
        await asyncio.sleep(interval_s)
