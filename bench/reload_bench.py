"""Reload benchmark: a generated CSV through the real flow vs. a raw COPY of the same file.

Starts the embedded stack and the services as separate processes (as `make run` does), then:
1. generates a CSV of --rows rows (10 columns: integers, text, numeric, timestamp);
2. raw COPY: asyncpg `copy_to_table` of the local file into a typed table, same PostgreSQL;
3. the flow: the file goes into the LZ, `_SUCCESS` lands, the bucket watcher announces them,
   the reload service starts an execution, the loader streams the object from S3 into COPY,
   swaps the table in, and the execution succeeds.
Prints rows/s of both, their ratio, and the loader process's peak RSS.

    .venv/bin/python bench/reload_bench.py --rows 1000000 [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
from _common import peak_rss, raw_copy_seconds, s3_client
from boto3.s3.transfer import TransferConfig

from loadbay_cli.devstack import ServiceProcesses
from loadbay_cli.stack import EmbeddedStack, StackInfo
from loadbay_platform.auth import mint_token
from loadbay_platform.settings import AuthSettings

COLUMNS = [
    ("id", "bigint"),
    ("customer_id", "integer"),
    ("name", "text"),
    ("city", "text"),
    ("amount", "numeric"),
    ("tax", "numeric"),
    ("quantity", "integer"),
    ("ordered_at", "timestamp"),
    ("status", "text"),
    ("note", "text"),
]
USER = ("bench", "bench@example.com")
COLUMNS_SQL = ", ".join(f"{c} {t}" for c, t in COLUMNS)


def generate_csv(path: Path, rows: int) -> None:
    rnd = random.Random(42)
    cities = ["Oslo", "Lima", "Pune", "Austin", "Porto", "Nairobi", "Hanoi", "Quito"]
    statuses = ["new", "paid", "shipped", "returned"]
    with path.open("w") as out:
        out.write(",".join(c for c, _ in COLUMNS) + "\n")
        for i in range(rows):
            out.write(
                f"{i},{rnd.randint(1, 99999)},customer {rnd.randint(1, 10**6)},"
                f"{rnd.choice(cities)},{rnd.randint(1, 99999) / 100},{rnd.randint(0, 999) / 100},"
                f"{rnd.randint(1, 20)},2024-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
                f" {rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:00,"
                f'{rnd.choice(statuses)},"a note, with a comma"\n'
            )


async def last_load_seconds(url: str) -> float:
    """The loader's own duration of its latest load, from its ledger."""
    conn = await asyncpg.connect(url)
    try:
        return float(
            await conn.fetchval(
                "SELECT extract(epoch FROM finished_at - started_at) FROM loadbay_loader.loads"
                " ORDER BY finished_at DESC LIMIT 1"
            )
        )
    finally:
        await conn.close()


def through_the_flow(info: StackInfo, reload_url: str, token: str, path: Path, run: int) -> float:
    """Seconds from `_SUCCESS` landing to the execution's success, as the user sees it."""
    s3 = s3_client(info)
    prefix = f"bench/orders/upload_date={1700000000 + run}/{USER[0]}/csv/"
    s3.upload_file(
        str(path),
        info.lz_bucket,
        prefix + "orders.csv",
        Config=TransferConfig(multipart_chunksize=64 << 20),
    )
    headers = {"Authorization": f"Bearer {token}"}
    http = httpx.Client(base_url=reload_url, headers=headers, timeout=60)
    # Let the watcher register the data file first, so the clock covers only the reload.
    while not http.get("/datasets/bench/orders/files", params={"status": "pending"}).json():
        time.sleep(0.05)
    done_before = len(http.get("/datasets/bench/orders/executions").json())
    started = time.perf_counter()
    s3.put_object(Bucket=info.lz_bucket, Key=prefix + "_SUCCESS", Body=b"")
    while True:
        found = http.get("/datasets/bench/orders/executions").json()
        if len(found) > done_before and found[0]["status"] != "running":
            elapsed = time.perf_counter() - started
            if found[0]["status"] != "succeeded":
                raise SystemExit(f"the reload failed: {found[0]['reason']}")
            return elapsed
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loadbay-bench-") as tmp:
        work = Path(tmp)
        data = work / "orders.csv"
        generate_csv(data, args.rows)
        size_mb = data.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows, {size_mb:.1f} MB")
        with EmbeddedStack(work / "stack") as stack:
            info = stack.info
            services = ServiceProcesses(
                info,
                work / "logs",
                {
                    "LOADBAY_RELOAD_WATCHER_ENABLED": "true",
                    "LOADBAY_RELOAD_WATCH_INTERVAL_S": "0.2",
                },
            )
            urls = services.start()
            try:
                services.wait_ready()
                token = mint_token(AuthSettings(), *USER)
                httpx.post(
                    urls["reload"] + "/datasets",
                    headers={"Authorization": f"Bearer {token}"},
                    json={
                        "domain": "bench",
                        "name": "orders",
                        "columns": [{"name": c, "type": t} for c, t in COLUMNS],
                    },
                ).raise_for_status()
                loader = psutil.Process(services.procs["loader"].pid)
                rss_idle = loader.memory_info().rss
                raw: list[float] = []
                flow: list[float] = []
                loads: list[float] = []
                for run in range(args.repeat):
                    raw.append(asyncio.run(raw_copy_seconds(info.postgres_url, data, COLUMNS_SQL)))
                    flow.append(through_the_flow(info, urls["reload"], token, data, run))
                    loads.append(asyncio.run(last_load_seconds(info.postgres_url)))
                    print(f"run {run + 1}: raw COPY {raw[-1]:.2f} s, reload flow {flow[-1]:.2f} s")
                peak = peak_rss(loader.pid)
            finally:
                services.stop()
                for line in (work / "logs" / "loader.log").read_text().splitlines():
                    if "COPY" in line and "swap" in line:
                        print("loader:", json.loads(line)["message"])
    raw_rate = args.rows / statistics.median(raw)
    flow_rate = args.rows / statistics.median(flow)
    print(f"\nrows: {args.rows:,} ({size_mb:.1f} MB), median of {args.repeat} runs")
    print(f"raw COPY from local disk : {raw_rate:,.0f} rows/s")
    print(f"reload flow from S3      : {flow_rate:,.0f} rows/s  (_SUCCESS -> execution succeeded)")
    print(
        f"loader's own load time   : {args.rows / statistics.median(loads):,.0f} rows/s"
        f"  (S3 read, COPY, DLZ copy, swap, commit; median {statistics.median(loads):.2f} s)"
    )
    print(f"ratio flow / raw COPY    : {flow_rate / raw_rate:.2f}")
    print(f"loader RSS idle / peak   : {rss_idle / 2**20:.0f} MiB / {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
