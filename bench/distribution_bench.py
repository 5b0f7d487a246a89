"""Distribution benchmark: 100 client workspaces, one incremental file of 1,000,000 rows spread
over them by x__client_id, through a real run; and a raw COPY of the same file.

Starts the embedded stack and the distribution, loader and notifier services as separate
processes (as `make run` does). Prints the run's wall time (API start -> run finished), the
rows/s it reached, the rows/s of a raw COPY of the same file into one plain table, their ratio,
the loader process's peak RSS and the loader's own account of each load. `--inc-rows N` then
runs an incremental file of N rows (updates, deletes, new keys) against its own raw COPY;
`--pg-log FILE` profiles the server's statements (see bench/README.md).

    .venv/bin/python bench/distribution_bench.py --rows 1000000 --workspaces 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from _common import peak_rss, raw_copy_seconds, s3_client
from boto3.s3.transfer import TransferConfig

from loadbay_cli.devstack import ServiceProcesses
from loadbay_cli.stack import EmbeddedStack
from loadbay_platform.auth import mint_token
from loadbay_platform.settings import AuthSettings

COLUMNS = [
    ("cp__order_id", "bigint"), ("a__customer", "text"), ("a__city", "text"),
    ("f__amount", "numeric"), ("f__quantity", "integer"), ("d__ordered", "date"),
]  # fmt: skip


def generate(path: Path, rows: int, workspaces: int) -> None:
    rnd = random.Random(3)
    cities = ["Oslo", "Lima", "Pune", "Austin", "Porto", "Hanoi"]
    with path.open("w") as out:
        out.write(",".join(c for c, _ in COLUMNS) + ",x__client_id,x__deleted\n")
        for i in range(rows):
            out.write(
                f"{i},customer {rnd.randint(1, 50000)},{rnd.choice(cities)},"
                f"{rnd.randint(1, 99999) / 100},{rnd.randint(1, 20)},"
                f"2030-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d},"
                f"client_{i % workspaces},false\n"
            )


async def _log_statements(url: str) -> None:
    """Before the services connect: their sessions log statements and slow plans."""
    conn = await asyncpg.connect(url)
    try:
        for setting in (
            "log_min_duration_statement = 1",
            "session_preload_libraries = 'auto_explain'",
            "auto_explain.log_min_duration = 100",
            "auto_explain.log_analyze = on",
            "auto_explain.log_nested_statements = on",
            "log_line_prefix = '%m [%p] '",
        ):
            await conn.execute(f"ALTER SYSTEM SET {setting}")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


def generate_inc(path: Path, rows: int, first: int, workspaces: int) -> None:
    """An incremental file after `generate`'s: half its rows restate keys of the first file
    (some twice; one in ten of them deletes), half are new keys."""
    rnd = random.Random(4)
    with path.open("w") as out:
        out.write(",".join(c for c, _ in COLUMNS) + ",x__client_id,x__deleted\n")
        for j in range(rows):
            i = rnd.randrange(first) if j % 2 == 0 else first + j
            out.write(
                f"{i},customer {rnd.randint(1, 50000)},Oslo,{rnd.randint(1, 99999) / 100},"
                f"{rnd.randint(1, 20)},2031-01-01,client_{i % workspaces},"
                f"{'true' if j % 20 == 0 else 'false'}\n"
            )


def _run(http: httpx.Client) -> tuple[dict[str, Any], float]:
    """Start a run and wait for its end: (the run, seconds from sending the POST to the run's
    ``finished_at``, which the distribution service records as it ends the run: the same
    machine's clock, so how often this polls does not count)."""
    started = datetime.now(UTC)
    run_id = http.post("/data-products/bench/runs").json()["run_id"]
    while (run := http.get(f"/runs/{run_id}").json())["status"] == "running":
        time.sleep(0.1)
    return run, (datetime.fromisoformat(run["finished_at"]) - started).total_seconds()


def _report(name: str, run: dict[str, Any], rows: int, wall: float, raw: float) -> None:
    upserted = sum(r["rows_upserted"] for r in run["results"])
    deleted = sum(r["rows_deleted"] for r in run["results"])
    failed = [r for r in run["results"] if r["status"] != "succeeded"]
    print(f"{name} run {run['status']}: {len(run['results'])} workspace loads, {len(failed)}"
          f" failed, {upserted:,} rows upserted, {deleted:,} deleted")  # fmt: skip
    print(f"  distribution run : {rows / wall:,.0f} rows/s, wall {wall:.2f} s")
    print(f"  raw COPY         : {rows / raw:,.0f} rows/s ({raw:.2f} s)")
    print(f"  ratio run / raw COPY: {raw / wall:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workspaces", type=int, default=100)
    parser.add_argument(
        "--pg-log",
        type=Path,
        help="profile: log the statements that take 1 ms or more, and the plans of those over"
        " 100 ms (auto_explain), and copy the server's log here (slows the run down)",
    )
    parser.add_argument(
        "--inc-rows",
        type=int,
        default=0,
        help="then an incremental file of this many rows (updates, deletes, new keys)",
    )
    args = parser.parse_args()
    columns_sql = (
        ", ".join(f"{c} {t}" for c, t in COLUMNS) + ", x__client_id text, x__deleted boolean"
    )
    with tempfile.TemporaryDirectory(prefix="loadbay-dist-bench-") as tmp:
        work = Path(tmp)
        data = work / "orders.csv"
        generate(data, args.rows, args.workspaces)
        print(f"generated {args.rows:,} rows for {args.workspaces} workspaces"
              f" ({data.stat().st_size / 1e6:.1f} MB)")  # fmt: skip
        with EmbeddedStack(work / "stack") as stack:
            info = stack.info
            s3 = s3_client(info)
            s3.create_bucket(Bucket="bench-source")
            if args.pg_log:
                asyncio.run(_log_statements(info.postgres_url))
            services = ServiceProcesses(info, work / "logs", {})
            urls = services.start(("loader", "notifier", "distribution"))
            try:
                services.wait_ready()
                token = mint_token(AuthSettings(), "bench", "bench@example.com")
                http = httpx.Client(base_url=urls["distribution"], timeout=60,
                                    headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                http.post("/data-products", json={"name": "bench", "bucket": "bench-source",
                                                   "prefix": ""}).raise_for_status()  # fmt: skip
                for i in range(args.workspaces):
                    http.post("/data-products/bench/workspaces",
                              json={"client_id": f"client_{i}"}).raise_for_status()  # fmt: skip
                http.post("/data-products/bench/datasets", json={
                    "name": "orders", "columns": [{"name": c, "type": t} for c, t in COLUMNS],
                }).raise_for_status()  # fmt: skip
                s3.upload_file(str(data), "bench-source", "orders_20300101120000_inc.csv",
                               Config=TransferConfig(multipart_chunksize=64 << 20))  # fmt: skip
                run, wall = _run(http)
                if args.inc_rows:
                    inc = work / "orders_inc.csv"
                    generate_inc(inc, args.inc_rows, args.rows, args.workspaces)
                    s3.upload_file(str(inc), "bench-source", "orders_20300102120000_inc.csv")
                    inc_run, inc_wall = _run(http)
                peak = peak_rss(services.procs["loader"].pid)
                raw = asyncio.run(raw_copy_seconds(info.postgres_url, data, columns_sql))
                if args.inc_rows:
                    inc_raw = asyncio.run(raw_copy_seconds(info.postgres_url, inc, columns_sql))
                # The loader's own account of each load: its time, and how long staging took.
                loads = [
                    json.loads(line)["message"].split("workspace(s): ", 1)[-1]
                    for line in (work / "logs" / "loader.log").read_text().splitlines()
                    if " rows upserted," in line
                ]
            finally:
                services.stop()
                if args.pg_log:
                    shutil.copy(work / "stack" / "logs" / "postgres.log", args.pg_log)
    _report("first load (full)", run, args.rows, wall, raw)
    if args.inc_rows:
        _report("incremental", inc_run, args.inc_rows, inc_wall, inc_raw)
    print(f"loader peak RSS: {peak / 2**20:.0f} MiB")
    for line in loads:
        print(f"loader: {line}")


if __name__ == "__main__":
    main()
