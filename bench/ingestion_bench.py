"""Ingestion benchmark: an ingestion run vs. a plain aiobotocore copy loop, same objects.

Starts the embedded stack, a second moto server as the "remote" bucket's store, and the
ingestion service as its own process (so its memory is its own), then:
1. puts --small-count small objects (--small-size bytes each) and one --big-mib object in the
   remote bucket;
2. ingestion: a connection and two bindings (the small objects' folder, the big object's
   folder); the clock runs from `POST .../runs` to `succeeded` as the API shows it;
3. baseline: a child process copies the same objects with aiobotocore (get_object -> put_object
   for small objects, get_object -> upload_part in the same part size for the big one, the same
   concurrency).
Prints objects/s and MB/s of each and the peak RSS (VmHWM) of the process doing the copies.

    .venv/bin/python bench/ingestion_bench.py --small-count 2000 --big-mib 1024
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from boto3.s3.transfer import TransferConfig

from loadbay_cli.devstack import ServiceProcesses
from loadbay_cli.stack import EmbeddedStack, StackInfo, free_port
from loadbay_platform.auth import mint_token
from loadbay_platform.settings import AuthSettings

REMOTE_BUCKET = "bench-remote"
KEYS = {"aws_access_key_id": "remote", "aws_secret_access_key": "remote-secret"}
CONCURRENCY = 8
PART = 8 << 20


def peak_rss(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def start_remote(state: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (state / "remote-s3.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}"


def fill_remote(endpoint: str, small_count: int, small_size: int, big_mib: int) -> None:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **KEYS)
    s3.create_bucket(Bucket=REMOTE_BUCKET)
    line = b"id,name,amount\n" + b"".join(b"%d,name %d,%d.5\n" % (i, i, i) for i in range(10**5))
    body = line[:small_size]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(
            lambda i: s3.put_object(Bucket=REMOTE_BUCKET, Key=f"small/f{i:05d}.csv", Body=body),
            range(small_count),
        ))  # fmt: skip

    class Big:
        """A big CSV-looking stream, generated as it is read."""

        def __init__(self, size: int) -> None:
            self.left = size

        def read(self, n: int = -1) -> bytes:
            n = self.left if n < 0 else min(n, self.left)
            self.left -= n
            return (line * (n // len(line) + 1))[:n]

    s3.upload_fileobj(Big(big_mib << 20), REMOTE_BUCKET, "big/big.csv",
                      Config=TransferConfig(multipart_chunksize=64 << 20))  # fmt: skip


async def baseline(endpoint: str, info: dict[str, Any]) -> dict[str, Any]:
    """Child process: the plain aiobotocore copy loop."""
    session = get_session()
    cfg = AioConfig(max_pool_connections=CONCURRENCY * 2, s3={"addressing_style": "path"})
    async with (
        session.create_client("s3", endpoint_url=endpoint, region_name="us-east-1", config=cfg,
                              **KEYS) as remote,
        session.create_client("s3", endpoint_url=info["s3_endpoint_url"], region_name="us-east-1",
                              aws_access_key_id=info["s3_access_key_id"],
                              aws_secret_access_key=info["s3_secret_access_key"],
                              config=cfg) as local,
    ):  # fmt: skip
        figures: dict[str, Any] = {}
        for folder in ("small/", "big/"):
            started = time.perf_counter()
            objects = []
            async for page in remote.get_paginator("list_objects_v2").paginate(
                Bucket=REMOTE_BUCKET, Prefix=folder
            ):
                objects += page.get("Contents", [])
            gate = asyncio.Semaphore(CONCURRENCY)

            async def copy(o: dict[str, Any], gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    got = await remote.get_object(Bucket=REMOTE_BUCKET, Key=o["Key"])
                    dest = "baseline/" + o["Key"]
                    async with got["Body"] as body:
                        if o["Size"] <= PART:
                            await local.put_object(Bucket=info["lz_bucket"], Key=dest,
                                                   Body=await body.read())  # fmt: skip
                            return
                        up = await local.create_multipart_upload(Bucket=info["lz_bucket"], Key=dest)
                        parts = []
                        while True:
                            chunk = b""
                            while len(chunk) < PART:
                                more = await body.read(PART - len(chunk))
                                if not more:
                                    break
                                chunk += more
                            if not chunk:
                                break
                            n = len(parts) + 1
                            part = await local.upload_part(
                                Bucket=info["lz_bucket"], Key=dest, UploadId=up["UploadId"],
                                PartNumber=n, Body=chunk,
                            )  # fmt: skip
                            parts.append({"PartNumber": n, "ETag": part["ETag"]})
                        await local.complete_multipart_upload(
                            Bucket=info["lz_bucket"], Key=dest, UploadId=up["UploadId"],
                            MultipartUpload={"Parts": parts},
                        )  # fmt: skip

            await asyncio.gather(*(copy(o) for o in objects))
            seconds = time.perf_counter() - started
            figures[folder] = {"objects": len(objects), "bytes": sum(o["Size"] for o in objects),
                               "seconds": seconds, "peak_rss": peak_rss()}  # fmt: skip
        return figures


def rates(objects: int, size: int, seconds: float) -> str:
    return f"{objects / seconds:10.1f} objects/s {size / seconds / 1e6:8.1f} MB/s ({seconds:.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--small-count", type=int, default=2000)
    parser.add_argument("--small-size", type=int, default=4096)
    parser.add_argument("--big-mib", type=int, default=256, help="size of the big object, MiB")
    parser.add_argument("--baseline", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        result = asyncio.run(baseline(args.baseline[0], json.loads(args.baseline[1])))
        print(json.dumps(result))
        return

    state = Path(tempfile.mkdtemp(prefix="loadbay-ingestion-bench-"))
    with EmbeddedStack(state) as stack:
        info: StackInfo = stack.info
        remote, endpoint = start_remote(state)
        services: ServiceProcesses | None = None
        try:
            t0 = time.perf_counter()
            fill_remote(endpoint, args.small_count, args.small_size, args.big_mib)
            print(f"remote filled in {time.perf_counter() - t0:.1f} s")
            # The reload service too: bindings are checked against its datasets.
            services = ServiceProcesses(info, state / "logs", {
                "LOADBAY_LOG_LEVEL": "WARNING",
                "LOADBAY_INGESTION_POLL_INTERVAL_S": "0.2",
                "LOADBAY_INGESTION_COPY_CONCURRENCY": str(CONCURRENCY),
                "LOADBAY_INGESTION_PART_SIZE_MIB": str(PART >> 20),
                # The remote test server is on this machine: the operator allows it.
                "LOADBAY_INGESTION_ALLOWED_ENDPOINTS": endpoint.removeprefix("http://"),
            })  # fmt: skip
            urls = services.start(("reload", "ingestion"))
            services.wait_ready()
            ingestion = asyncio.run(run_ingestion(urls, endpoint, services.procs["ingestion"].pid))
            info_json = json.dumps({"s3_endpoint_url": info.s3_endpoint_url,
                                    "s3_access_key_id": info.s3_access_key_id,
                                    "s3_secret_access_key": info.s3_secret_access_key,
                                    "lz_bucket": info.lz_bucket})  # fmt: skip
            out = subprocess.run(
                [sys.executable, __file__, "--baseline", endpoint, info_json],
                check=True, capture_output=True,
            )  # fmt: skip
            base = json.loads(out.stdout)
        finally:
            if services is not None:
                services.stop()
            remote.terminate()
            remote.wait(10)
    print(f"\n{args.small_count} objects of {args.small_size} B, one of {args.big_mib} MiB;"
          f" copy concurrency {CONCURRENCY}, parts {PART >> 20} MiB")  # fmt: skip
    for folder, label in (("small/", "small objects"), ("big/", "big object")):
        i, b = ingestion[folder], base[folder]
        print(f"{label}:")
        print(f"  ingestion run  {rates(i['objects'], i['bytes'], i['seconds'])}"
              f"  service peak RSS {i['peak_rss'] / 2**20:.0f} MiB")  # fmt: skip
        print(f"  aiobotocore    {rates(b['objects'], b['bytes'], b['seconds'])}"
              f"  loop peak RSS    {b['peak_rss'] / 2**20:.0f} MiB")  # fmt: skip
        print(f"  ratio (ingestion / loop): {b['seconds'] / i['seconds']:.2f}")


async def run_ingestion(urls: dict[str, str], endpoint: str, pid: int) -> dict[str, Any]:
    token = mint_token(AuthSettings(), "bench", "bench@example.com")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=urls["reload"], timeout=60, headers=headers) as http:
        for name in ("small", "big"):
            made = await http.post("/datasets", json={
                "domain": "bench", "name": name, "dataset_type": "append",
                "columns": [{"name": "id", "type": "integer"}, {"name": "name", "type": "text"},
                            {"name": "amount", "type": "numeric"}],
            })  # fmt: skip
            made.raise_for_status()
    async with httpx.AsyncClient(base_url=urls["ingestion"], timeout=60, headers=headers) as http:
        made = await http.post("/connections", json={
            "name": "bench", "bucket": REMOTE_BUCKET, "access_type": "access_keys",
            "region": "us-east-1", "endpoint_url": endpoint, "version": "1.7",
            "access_key_id": KEYS["aws_access_key_id"],
            "secret_access_key": KEYS["aws_secret_access_key"],
        })  # fmt: skip
        made.raise_for_status()
        figures: dict[str, Any] = {}
        print(f"service idle RSS {peak_rss(pid) / 2**20:.0f} MiB")
        for folder, dataset in (("small/", "bench/small"), ("big/", "bench/big")):
            for _ in range(300):  # until ingestion has heard of the new dataset
                bound = await http.post("/connections/bench/bindings", json={
                    "dataset": dataset, "dataset_type": "append", "file_type": "csv",
                    "directory_path": folder,
                })  # fmt: skip
                if bound.status_code != 422:
                    break
                await asyncio.sleep(0.1)
            bound.raise_for_status()
            started = time.perf_counter()
            run_id = (await http.post(f"/bindings/{dataset}/runs")).json()["run_id"]
            while True:
                run = (await http.get(f"/runs/{run_id}")).json()
                if run["status"] in ("succeeded", "failed"):
                    break
                await asyncio.sleep(0.05)
            seconds = time.perf_counter() - started
            assert run["status"] == "succeeded", run.get("reason")
            figures[folder] = {"objects": run["copied_count"], "bytes": run["bytes_copied"],
                               "seconds": seconds, "peak_rss": peak_rss(pid)}  # fmt: skip
        return figures


if __name__ == "__main__":
    main()
