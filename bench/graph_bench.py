"""Graph benchmark: a generated Gremlin CSV graph through the bulk-loader API vs. a raw COPY.

Starts the embedded stack and the services as separate processes (as `make run` does), then:
1. generates --vertices vertices and --edges edges in Gremlin CSV (edges: ~id, ~from, ~to,
   ~label, weight:Double, since:Int);
2. loads the vertex file through `POST /loader`, then, timed, the edge file;
3. raw COPY: asyncpg `copy_to_table` of the same edge file into a plain table of text columns,
   same PostgreSQL;
Prints edges/s and records/s of the loader, edges/s of the raw COPY, the ratio, and the loader
process's peak RSS.

    .venv/bin/python bench/graph_bench.py --edges 1000000 [--vertices 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

import httpx
from _common import peak_rss, raw_copy_seconds, s3_client
from boto3.s3.transfer import TransferConfig

from loadbay_cli.devstack import ServiceProcesses
from loadbay_cli.stack import EmbeddedStack, StackInfo
from loadbay_platform.auth import mint_token
from loadbay_platform.settings import AuthSettings

BENCH_BUCKET = "loadbay-graph-bench"
ROLE = "arn:aws:iam::123456789012:role/NeptuneLoadFromS3"


def generate(work: Path, vertices: int, edges: int) -> tuple[Path, Path]:
    rnd = random.Random(7)
    vertex_file, edge_file = work / "vertices.csv", work / "edges.csv"
    with vertex_file.open("w") as out:
        out.write("~id,~label,name:String,score:Int\n")
        for i in range(vertices):
            out.write(f"v{i},person,name {i},{rnd.randint(0, 1000)}\n")
    with edge_file.open("w") as out:
        out.write("~id,~from,~to,~label,weight:Double,since:Int\n")
        for i in range(edges):
            a, b = rnd.randrange(vertices), rnd.randrange(vertices)
            out.write(f"e{i},v{a},v{b},knows,{rnd.random():.4f},{rnd.randint(1990, 2024)}\n")
    return vertex_file, edge_file


def load(http: httpx.Client, info: StackInfo, key: str) -> dict[str, object]:
    response = http.post(
        "/loader",
        json={"source": f"s3://{BENCH_BUCKET}/{key}", "format": "csv", "iamRoleArn": ROLE,
              "region": info.s3_region, "mode": "NEW"},
    )  # fmt: skip
    response.raise_for_status()
    load_id = response.json()["payload"]["loadId"]
    while True:
        overall = http.get(f"/loader/{load_id}").json()["payload"]["overallStatus"]
        if overall["status"] not in ("LOAD_NOT_STARTED", "LOAD_IN_QUEUE", "LOAD_IN_PROGRESS"):
            if overall["status"] != "LOAD_COMPLETED":
                raise SystemExit(f"load failed: {overall}")
            return dict(overall)
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--vertices", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loadbay-graph-bench-") as tmp:
        work = Path(tmp)
        vertex_file, edge_file = generate(work, args.vertices, args.edges)
        print(f"generated {args.vertices:,} vertices, {args.edges:,} edges"
              f" ({edge_file.stat().st_size / 1e6:.1f} MB)")  # fmt: skip
        with EmbeddedStack(work / "stack") as stack:
            info = stack.info
            s3 = s3_client(info)
            config = TransferConfig(multipart_chunksize=64 << 20)
            # The loader reads only sources an operator lists, for the graph's users.
            s3.create_bucket(Bucket=BENCH_BUCKET)
            s3.upload_file(str(vertex_file), BENCH_BUCKET, "bench/vertices.csv", Config=config)
            s3.upload_file(str(edge_file), BENCH_BUCKET, "bench/edges.csv", Config=config)
            services = ServiceProcesses(
                info,
                work / "logs",
                {
                    "LOADBAY_LOADER_GRAPH_USERS": "bench",
                    "LOADBAY_LOADER_READABLE_SOURCES": f"s3://{BENCH_BUCKET}/bench/",
                },
            )
            urls = services.start(("loader",))
            try:
                services.wait_ready()
                token = mint_token(AuthSettings(), "bench", "bench@example.com")
                http = httpx.Client(
                    base_url=urls["loader"], headers={"Authorization": f"Bearer {token}"},
                    timeout=60,
                )  # fmt: skip
                load(http, info, "bench/vertices.csv")
                started = time.perf_counter()
                overall = load(http, info, "bench/edges.csv")
                loader_s = time.perf_counter() - started
                peak = peak_rss(services.procs["loader"].pid)
                raw_s = asyncio.run(raw_copy_seconds(
                    info.postgres_url, edge_file,
                    "id text, from_id text, to_id text, label text, weight text, since text",
                ))  # fmt: skip
            finally:
                services.stop()
    records = int(str(overall["totalRecords"]))
    print(
        f"bulk loader (API, S3 -> graph): {args.edges / loader_s:,.0f} edges/s,"
        f" {records / loader_s:,.0f} records/s ({loader_s:.2f} s, {records:,} records)"
    )
    print(f"raw COPY of the same file      : {args.edges / raw_s:,.0f} edges/s ({raw_s:.2f} s)")
    print(f"ratio loader / raw COPY        : {raw_s / loader_s:.2f}")
    print(f"loader peak RSS                : {peak / 2**20:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
