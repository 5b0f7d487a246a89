"""RDF benchmark: N-Triples, N-Quads and Turtle through the bulk-loader API vs. a raw COPY.

Starts the embedded stack and the loader as a separate process (as `make run` does), then for
each format:
1. generates --statements statements (IRIs, language-tagged and typed literals; N-Quads spread
   over 4 named graphs; Turtle with prefixes, one statement per subject line) and puts the
   file in S3;
2. empties the graph (the fast reset, `POST /system`), then, timed, loads the file through
   `POST /loader` until `LOAD_COMPLETED` (wall clock, polling the status every 50 ms);
3. raw COPY: asyncpg `copy_to_table` of the same statements, as the four N-Triples terms the
   store keeps, from a local file into a plain table of four text columns, same PostgreSQL;
   and into a table shaped like the store (the digest key and the subject index of `quads`),
   which is what the store costs by itself.
Prints statements/s of each, and the ratios.

    .venv/bin/python bench/rdf_bench.py --statements 1000000 [--formats ntriples,nquads,turtle]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from _common import peak_rss, s3_client
from boto3.s3.transfer import TransferConfig

from loadbay_cli.devstack import ServiceProcesses
from loadbay_cli.stack import EmbeddedStack, StackInfo
from loadbay_platform.auth import mint_token
from loadbay_platform.settings import AuthSettings

BENCH_BUCKET = "loadbay-rdf-bench"
ROLE = "arn:aws:iam::123456789012:role/NeptuneLoadFromS3"
DEFAULT_GRAPH = "<http://aws.amazon.com/neptune/vocab/v01/DefaultNamedGraph>"
XSD_INT = "<http://www.w3.org/2001/XMLSchema#integer>"
SUFFIX = {"ntriples": "nt", "nquads": "nq", "turtle": "ttl"}
PLAIN_TABLE = "s text, p text, o text, g text"
# As migration 0004_rdf_store.sql makes `quads`.
STORE_TABLE = """s text NOT NULL, p text NOT NULL, o text NOT NULL, g text NOT NULL,
    spog uuid GENERATED ALWAYS AS (md5(s || E'\\n' || p || E'\\n' || o || E'\\n' || g)::uuid)
    STORED PRIMARY KEY"""
STORE_INDEX = "CREATE INDEX ON public.bench_raw_copy USING hash (s)"


def terms(i: int, fmt: str) -> tuple[str, str, str, str]:
    s = f"<http://example.org/item{i}>"
    p = f"<http://example.org/p{i % 7}>"
    kind = i % 3
    if kind == 0:
        o = f'"value {i}"@en'
    elif kind == 1:
        o = f'"{i}"^^{XSD_INT}'
    else:
        o = f"<http://example.org/item{i + 1}>"
    g = f"<http://example.org/g{i % 4}>" if fmt == "nquads" else DEFAULT_GRAPH
    return s, p, o, g


def generate(work: Path, fmt: str, statements: int) -> tuple[Path, Path]:
    """The feed in `fmt`, and the same statements as TSV of stored terms (the raw COPY's)."""
    feed, tsv = work / f"data.{SUFFIX[fmt]}", work / f"{fmt}.tsv"
    with feed.open("w") as out, tsv.open("w") as raw:
        if fmt == "turtle":
            out.write("@prefix ex: <http://example.org/> .\n")
            out.write("@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n")
        for i in range(statements):
            s, p, o, g = terms(i, fmt)
            raw.write(f"{s}\t{p}\t{o}\t{g}\n")
            if fmt == "ntriples":
                out.write(f"{s} {p} {o} .\n")
            elif fmt == "nquads":
                out.write(f"{s} {p} {o} {g} .\n")
            else:
                obj = (o, f'"{i}"^^xsd:integer', f"ex:item{i + 1}")[i % 3]
                out.write(f"ex:item{i} ex:p{i % 7} {obj} .\n")
    return feed, tsv


async def raw_copy_seconds(url: str, tsv: Path, columns: str, index: str | None) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS public.bench_raw_copy")
        await conn.execute(f"CREATE TABLE public.bench_raw_copy ({columns})")
        if index:
            await conn.execute(index)
        started = time.perf_counter()
        await conn.copy_to_table(
            "bench_raw_copy", schema_name="public", source=tsv, columns=["s", "p", "o", "g"]
        )
        return time.perf_counter() - started
    finally:
        await conn.execute("DROP TABLE IF EXISTS public.bench_raw_copy")
        await conn.close()


def reset_graph(http: httpx.Client) -> None:
    token = http.post("/system", json={"action": "initiateDatabaseReset"}).json()["payload"]
    done = http.post("/system", json={"action": "performDatabaseReset", **token})
    done.raise_for_status()


def load(http: httpx.Client, info: StackInfo, key: str, fmt: str) -> dict[str, object]:
    response = http.post(
        "/loader",
        json={"source": f"s3://{BENCH_BUCKET}/{key}", "format": fmt, "iamRoleArn": ROLE,
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
    parser.add_argument("--statements", type=int, default=1_000_000)
    parser.add_argument("--formats", default="ntriples,nquads,turtle")
    args = parser.parse_args()
    formats = args.formats.split(",")
    n = args.statements
    rows: list[tuple[str, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="loadbay-rdf-bench-") as tmp:
        work = Path(tmp)
        with EmbeddedStack(work / "stack") as stack:
            info = stack.info
            s3 = s3_client(info)
            config = TransferConfig(multipart_chunksize=64 << 20)
            s3.create_bucket(Bucket=BENCH_BUCKET)
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
                    timeout=120,
                )  # fmt: skip
                for fmt in formats:
                    feed, tsv = generate(work, fmt, n)
                    key = f"bench/{fmt}/{feed.name}"
                    s3.upload_file(str(feed), BENCH_BUCKET, key, Config=config)
                    print(f"{fmt}: {n:,} statements ({feed.stat().st_size / 1e6:.1f} MB)")
                    reset_graph(http)
                    started = time.perf_counter()
                    overall = load(http, info, key, fmt)
                    loader_s = time.perf_counter() - started
                    assert overall["totalRecords"] == n, overall
                    plain_s = asyncio.run(
                        raw_copy_seconds(info.postgres_url, tsv, PLAIN_TABLE, None)
                    )
                    store_s = asyncio.run(
                        raw_copy_seconds(info.postgres_url, tsv, STORE_TABLE, STORE_INDEX)
                    )
                    rows.append((fmt, loader_s, plain_s, store_s))
                    feed.unlink()
                    tsv.unlink()
                peak = peak_rss(services.procs["loader"].pid)
            finally:
                services.stop()
    print()
    print("| format | loader (API, S3 -> quads) | raw COPY, plain table | ratio |"
          " raw COPY, store-shaped table | ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for fmt, loader_s, plain_s, store_s in rows:
        print(
            f"| {fmt} | {n / loader_s:,.0f} statements/s ({loader_s:.2f} s)"
            f" | {n / plain_s:,.0f} rows/s ({plain_s:.2f} s) | **{plain_s / loader_s:.2f}**"
            f" | {n / store_s:,.0f} rows/s ({store_s:.2f} s) | {store_s / loader_s:.2f} |"
        )
    print(f"\nloader peak RSS: {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
