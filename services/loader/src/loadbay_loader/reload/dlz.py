"""Publishing validated files to the data lake zone (DLZ).

A successful reload records, in its own transaction, which files the DLZ must now hold under
the dataset's prefix. This task carries that out afterwards: copy each file (server-side), then
remove the objects of earlier reloads. Copies are idempotent, so a crash or an S3 error only
means doing it again; publications run one at a time, oldest first, so the latest reload wins.
`_SUCCESS` markers are never among the files.
"""

from __future__ import annotations

import json
import logging

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError

from loadbay_loader import repository
from loadbay_loader.metrics import DLZ_BACKLOG
from loadbay_platform.outages import DATABASE_ERRORS
from loadbay_platform.reasons import truncate
from loadbay_platform.s3 import ObjectStore
from loadbay_platform.waker import Waker

log = logging.getLogger(__name__)
CHANNEL = "loadbay_loader_dlz"


async def publish(
    s3: ObjectStore, bucket: str, prefix: str, files: list[dict[str, str]], *, replace: bool = True
) -> None:
    """Copy `files` under `prefix`; with `replace` (reloads) also remove what earlier loads
    put there; without it (appends) the DLZ keeps every file."""
    wanted = {prefix + f["name"]: f for f in files}
    for key, f in wanted.items():
        await s3.copy_object(
            Bucket=bucket, Key=key, CopySource={"Bucket": f["bucket"], "Key": f["key"]}
        )
    if not replace:
        return
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"] not in wanted:
                await s3.delete_object(Bucket=bucket, Key=obj["Key"])


async def publish_next(pool: asyncpg.Pool, s3: ObjectStore) -> bool:
    """Carry out the oldest pending publication; False when there is none (or another
    replica is publishing)."""
    async with pool.acquire(timeout=30) as conn, conn.transaction():
        if not await repository.try_lock_dlz(conn):
            return False
        row = await repository.next_dlz_publication(conn)
        if row is None:
            DLZ_BACKLOG.set(0)
            return False
        try:
            await publish(
                s3,
                row["dlz_bucket"],
                row["dlz_prefix"],
                json.loads(row["files"]),
                replace=row["replace"],
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("DLZ publication for load %s failed, will retry: %s", row["load_id"], exc)
            await repository.fail_dlz_publication(conn, row["id"], truncate(str(exc)))
            return False
        await repository.delete_dlz_publication(conn, row["id"])
        DLZ_BACKLOG.set(await repository.dlz_backlog(conn))
        return True


async def run_publisher(pool: asyncpg.Pool, s3: ObjectStore, poll_interval_s: float = 2.0) -> None:
    waker = Waker(pool, CHANNEL)
    try:
        await waker.listen()  # before the first look: a publication written meanwhile wakes it
        while True:
            try:
                while await publish_next(pool, s3):
                    pass
            except DATABASE_ERRORS as exc:
                log.warning("DLZ publisher: %r; retrying", exc)
            await waker.wait(poll_interval_s)
    finally:
        await waker.close()
