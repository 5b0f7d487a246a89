"""What the benchmark scripts share: a raw COPY baseline, the stack's S3 client, peak RSS."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import asyncpg
import boto3

from loadbay_cli.stack import StackInfo


async def raw_copy_seconds(url: str, path: Path, columns_sql: str) -> float:
    """Seconds for asyncpg `copy_to_table` of the local CSV `path` into a fresh plain table
    with `columns_sql` (e.g. "id bigint, name text"): the baseline every figure compares to."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS public.bench_raw_copy")
        await conn.execute(f"CREATE TABLE public.bench_raw_copy ({columns_sql})")
        started = time.perf_counter()
        await conn.copy_to_table(
            "bench_raw_copy", schema_name="public", source=path, format="csv", header=True
        )
        return time.perf_counter() - started
    finally:
        await conn.execute("DROP TABLE IF EXISTS public.bench_raw_copy")
        await conn.close()


def s3_client(info: StackInfo) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=info.s3_endpoint_url,
        aws_access_key_id=info.s3_access_key_id,
        aws_secret_access_key=info.s3_secret_access_key,
        region_name=info.s3_region,
    )


def peak_rss(pid: int) -> int:
    """VmHWM: a process's peak resident set size, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0
