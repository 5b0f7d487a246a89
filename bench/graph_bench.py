"""Graph benchmark: bulk loads through the loader API against a raw COPY of the same files.

Starts the embedded stack and the loader as a separate process (as `make run` does), then:
1. generates --vertices vertices and --edges edges in Gremlin CSV (vertices: ~id, ~label,
   name:String, score:Int; edges: ~id, ~from, ~to, ~label, weight:Double, since:Int), and an
   incremental edge file of --incremental edges: new edges, plus --repeats of them that restate
   edges of the first load exactly (each one a duplicate, as Neptune counts them);
2. first load, timed from `POST /loader` to `LOAD_COMPLETED`: the vertex and the edge file as
   one load (a prefix holding both; vertex files load first) into an empty graph;
3. incremental load, timed the same way: the incremental edge file into that graph;
4. raw COPY: asyncpg `copy_to_table` of the same files into plain tables of text columns on
   the same PostgreSQL, in the same run;
5. with --rdf-statements N (0 to skip): N-Triples, N-Quads and Turtle files of N statements
   each, loaded the same way (records/s only: the RDF path is graph/rdf.py's).

Prints each load's records/s and its ratio to the raw COPY (raw seconds / loader seconds), and
the loader process's peak RSS. With --repeat, the graph is emptied and both loads run again;
the medians are printed.

    .venv/bin/python bench/graph_bench.py --edges 1000000 --vertices 100000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from _common import peak_rss, raw_copy_seconds, s3_client
from boto3.s3.transfer import TransferConfig

from loadbay_cli.devstack import ServiceProcesses
from loadbay_cli.stack import EmbeddedStack, StackInfo
from loadbay_platform.auth import mint_token
from loadbay_platform.settings import AuthSettings

BENCH_BUCKET = "loadbay-graph-bench"
ROLE = "arn:aws:iam::123456789012:role/NeptuneLoadFromS3"
VERTEX_COLUMNS = "id text, label text, name text, score text"
EDGE_COLUMNS = "id text, from_id text, to_id text, label text, weight text, since text"
GRAPH_TABLES = "graph_vertices, graph_vertex_labels, graph_vertex_properties, graph_edges"


@dataclass
class Files:
    vertices: Path
    edges: Path
    incremental: Path
    rdf: dict[str, Path]


def generate(work: Path, vertices: int, edges: int, incremental: int, repeats: float) -> Files:
    rnd = random.Random(7)
    files = Files(work / "vertices.csv", work / "edges.csv", work / "incremental.csv", {})
    with files.vertices.open("w") as out:
        out.write("~id,~label,name:String,score:Int\n")
        for i in range(vertices):
            out.write(f"v{i},person,name {i},{rnd.randint(0, 1000)}\n")
    rows: list[str] = []  # a sample of the first load's rows, restated by the incremental file
    sample_every = max(1, edges // max(1, int(incremental * repeats)))
    with files.edges.open("w") as out:
        out.write("~id,~from,~to,~label,weight:Double,since:Int\n")
        for i in range(edges):
            a, b = rnd.randrange(vertices), rnd.randrange(vertices)
            row = f"e{i},v{a},v{b},knows,{rnd.random():.4f},{rnd.randint(1990, 2024)}\n"
            out.write(row)
            if i % sample_every == 0:
                rows.append(row)
    with files.incremental.open("w") as out:
        out.write("~id,~from,~to,~label,weight:Double,since:Int\n")
        restated = rows[: int(incremental * repeats)]
        every = max(1, incremental // max(1, len(restated)))
        for i in range(incremental):
            if restated and i % every == 0:
                out.write(restated.pop())
                continue
            a, b = rnd.randrange(vertices), rnd.randrange(vertices)
            out.write(f"n{i},v{a},v{b},likes,{rnd.random():.4f},{rnd.randint(1990, 2024)}\n")
    return files


def generate_rdf(work: Path, statements: int) -> dict[str, Path]:
    """N-Triples, N-Quads and Turtle files of `statements` statements each."""
    if statements <= 0:
        return {}
    ex = "http://example.org/"
    paths = {fmt: work / f"data.{ext}" for fmt, ext in
             (("ntriples", "nt"), ("nquads", "nq"), ("turtle", "ttl"))}  # fmt: skip
    with (
        paths["ntriples"].open("w") as nt,
        paths["nquads"].open("w") as nq,
        paths["turtle"].open("w") as ttl,
    ):
        ttl.write(f"@prefix ex: <{ex}> .\n")
        for i in range(statements):
            s, p = f"person{i // 4}", ("name", "age", "knows", "city")[i % 4]
            if p == "knows":
                other = (i * 7) % statements // 4
                obj_nt, obj_ttl = f"<{ex}person{other}>", f"ex:person{other}"
            elif p == "age":
                obj_nt = f'"{i % 90}"^^<http://www.w3.org/2001/XMLSchema#integer>'
                obj_ttl = str(i % 90)
            else:
                obj_nt = obj_ttl = f'"{p} {i}"'
            nt.write(f"<{ex}{s}> <{ex}{p}> {obj_nt} .\n")
            nq.write(f"<{ex}{s}> <{ex}{p}> {obj_nt} <{ex}graph{i % 3}> .\n")
            ttl.write(f"ex:{s} ex:{p} {obj_ttl} .\n")
    return paths


class Loader:
    """The loader's HTTP API, as a Neptune client script uses it."""

    def __init__(self, url: str, region: str) -> None:
        token = mint_token(AuthSettings(), "bench", "bench@example.com")
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        self.region = region

    def load(self, prefix: str, fmt: str = "csv") -> tuple[float, dict[str, Any]]:
        """(seconds from POST to LOAD_COMPLETED, overallStatus and its loadId)"""
        started = time.perf_counter()
        response = self.http.post(
            "/loader",
            json={"source": f"s3://{BENCH_BUCKET}/{prefix}", "format": fmt, "iamRoleArn": ROLE,
                  "region": self.region, "mode": "NEW", "failOnError": "TRUE"},
        )  # fmt: skip
        response.raise_for_status()
        load_id = response.json()["payload"]["loadId"]
        while True:
            overall = self.http.get(f"/loader/{load_id}").json()["payload"]["overallStatus"]
            if overall["status"] not in ("LOAD_NOT_STARTED", "LOAD_IN_QUEUE", "LOAD_IN_PROGRESS"):
                seconds = time.perf_counter() - started
                if overall["status"] != "LOAD_COMPLETED":
                    raise SystemExit(f"load of {prefix} failed: {overall}")
                return seconds, {**overall, "loadId": load_id}
            time.sleep(0.02)


@dataclass
class Run:
    first_s: float
    first_own_s: float  # the loader's own time: first feed started to last feed finished
    first_records: int
    incremental_s: float
    incremental_own_s: float
    incremental_records: int
    incremental_duplicates: int
    raw_first_s: float
    raw_incremental_s: float


async def empty_graph(info: StackInfo) -> None:
    conn = await asyncpg.connect(info.postgres_url)
    try:
        tables = ", ".join(f"loadbay_loader.{t}" for t in GRAPH_TABLES.split(", "))
        await conn.execute(f"TRUNCATE {tables}")
    finally:
        await conn.close()


async def own_seconds(info: StackInfo, load_id: str) -> float:
    """The load's time as the loader measured it (its feeds' wall time, before rounding)."""
    conn = await asyncpg.connect(info.postgres_url)
    try:
        seconds: float = await conn.fetchval(
            "SELECT total_time_spent FROM loadbay_loader.graph_loads WHERE id = $1", load_id
        )
    finally:
        await conn.close()
    return seconds


async def raw_copies(info: StackInfo, files: Files) -> tuple[float, float]:
    vertices = await raw_copy_seconds(info.postgres_url, files.vertices, VERTEX_COLUMNS)
    edges = await raw_copy_seconds(info.postgres_url, files.edges, EDGE_COLUMNS)
    incremental = await raw_copy_seconds(info.postgres_url, files.incremental, EDGE_COLUMNS)
    return vertices + edges, incremental


def run_once(loader: Loader, info: StackInfo, files: Files) -> Run:
    asyncio.run(empty_graph(info))
    first_s, first = loader.load("bench/first/")
    incremental_s, incremental = loader.load("bench/incremental/")
    raw_first_s, raw_incremental_s = asyncio.run(raw_copies(info, files))
    return Run(
        first_s, asyncio.run(own_seconds(info, first["loadId"])), int(first["totalRecords"]),
        incremental_s, asyncio.run(own_seconds(info, incremental["loadId"])),
        int(incremental["totalRecords"]), int(incremental["totalDuplicates"]), raw_first_s,
        raw_incremental_s,
    )  # fmt: skip


def s3_read_seconds(s3: Any, keys: tuple[str, ...]) -> float:
    """Seconds to read the objects from the stack's S3 (moto), bytes discarded: how fast the
    loader's source can go at best."""
    started = time.perf_counter()
    for key in keys:
        body = s3.get_object(Bucket=BENCH_BUCKET, Key=key)["Body"]
        while body.read(1 << 20):
            pass
    return time.perf_counter() - started


def median(runs: list[Run], value: Callable[[Run], float]) -> float:
    return statistics.median(value(r) for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--vertices", type=int, default=100_000)
    parser.add_argument("--incremental", type=int, default=250_000, help="edges of the 2nd load")
    parser.add_argument("--repeats", type=float, default=0.1, help="share restating loaded edges")
    parser.add_argument("--rdf-statements", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loadbay-graph-bench-") as tmp:
        work = Path(tmp)
        files = generate(work, args.vertices, args.edges, args.incremental, args.repeats)
        files.rdf = generate_rdf(work, args.rdf_statements)
        print(f"generated {args.vertices:,} vertices, {args.edges:,} edges"
              f" ({(files.vertices.stat().st_size + files.edges.stat().st_size) / 1e6:.1f} MB),"
              f" {args.incremental:,} incremental edges"
              f" ({files.incremental.stat().st_size / 1e6:.1f} MB)")  # fmt: skip
        with EmbeddedStack(work / "stack") as stack:
            info = stack.info
            s3 = s3_client(info)
            config = TransferConfig(multipart_chunksize=64 << 20)
            s3.create_bucket(Bucket=BENCH_BUCKET)
            uploads = {
                "bench/first/vertices.csv": files.vertices,
                "bench/first/edges.csv": files.edges,
                "bench/incremental/edges.csv": files.incremental,
                **{f"bench/{fmt}/data{path.suffix}": path for fmt, path in files.rdf.items()},
            }
            for key, path in uploads.items():
                s3.upload_file(str(path), BENCH_BUCKET, key, Config=config)
            services = ServiceProcesses(
                info,
                work / "logs",
                {
                    # The loader reads only sources an operator lists, for the graph's users.
                    "LOADBAY_LOADER_GRAPH_USERS": "bench",
                    "LOADBAY_LOADER_READABLE_SOURCES": f"s3://{BENCH_BUCKET}/bench/",
                },
            )
            urls = services.start(("loader",))
            try:
                services.wait_ready()
                loader = Loader(urls["loader"], info.s3_region)
                runs = [run_once(loader, info, files) for _ in range(args.repeat)]
                s3_s = s3_read_seconds(s3, ("bench/first/vertices.csv", "bench/first/edges.csv"))
                rdf = {fmt: loader.load(f"bench/{fmt}/", fmt) for fmt in files.rdf}
                peak = peak_rss(services.procs["loader"].pid)
            finally:
                services.stop()
    first_s, incr_s = median(runs, lambda r: r.first_s), median(runs, lambda r: r.incremental_s)
    raw_first_s = median(runs, lambda r: r.raw_first_s)
    raw_incr_s = median(runs, lambda r: r.raw_incremental_s)
    rows_first, rows_incr = args.vertices + args.edges, args.incremental
    last = runs[-1]
    print(f"median of {len(runs)} run(s); ratio = raw COPY seconds / loader seconds")
    print(
        f"first load (empty graph)  : {rows_first / first_s:,.0f} rows/s,"
        f" {last.first_records / first_s:,.0f} records/s ({first_s:.2f} s,"
        f" {last.first_records:,} records)"
    )
    print(
        f"  raw COPY of both files  : {rows_first / raw_first_s:,.0f} rows/s ({raw_first_s:.2f} s)"
    )
    print(f"  ratio                   : {median(runs, lambda r: r.raw_first_s / r.first_s):.2f}")
    own = median(runs, lambda r: r.first_own_s)
    print(f"  loader's own time       : {own:.2f} s, ratio {raw_first_s / own:.2f}")
    print(f"  S3 read of both files   : {rows_first / s3_s:,.0f} rows/s ({s3_s:.2f} s)")
    print(
        f"incremental load          : {rows_incr / incr_s:,.0f} rows/s,"
        f" {last.incremental_records / incr_s:,.0f} records/s ({incr_s:.2f} s,"
        f" {last.incremental_records:,} records, {last.incremental_duplicates:,} duplicates)"
    )
    print(f"  raw COPY of the file    : {rows_incr / raw_incr_s:,.0f} rows/s ({raw_incr_s:.2f} s)")
    print(
        f"  ratio                   :"
        f" {median(runs, lambda r: r.raw_incremental_s / r.incremental_s):.2f}"
    )
    own = median(runs, lambda r: r.incremental_own_s)
    print(f"  loader's own time       : {own:.2f} s, ratio {raw_incr_s / own:.2f}")
    for fmt, (seconds, overall) in rdf.items():
        records = int(overall["totalRecords"])
        print(f"{fmt:<26}: {records / seconds:,.0f} records/s ({seconds:.2f} s, {records:,})")
    print(f"loader peak RSS           : {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
