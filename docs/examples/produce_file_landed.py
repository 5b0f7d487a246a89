"""Land files in loadbay's landing zone (LZ) and announce them, as an upstream ETL job would.

Uploads each file to `<domain>/<dataset>/upload_date=<epoch>/<user_id>/<file_type>/<name>` in
the LZ bucket, publishes a `file.landed` event for it, then uploads an empty `_SUCCESS` to the
same batch folder and publishes `file.landed` for that too, which starts the reload.

Needs: pip install aiokafka boto3
Run:   python produce_file_landed.py sales/orders orders.csv [more.csv ...] --user dev

The broker and the object store are read from `.loadbay/stack.json` (written by `make run`);
`--stack` points elsewhere. The dataset must exist and `--user` must be its owner or one of
its authorized users, or the events end up on `loadbay.file.landed.dlq`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from aiokafka import AIOKafkaProducer
from botocore.config import Config

TOPIC = "loadbay.file.landed"  # loadbay.<event type>
SOURCE = "etl/produce-file-landed-example"  # CloudEvents `source`: who you are
SUCCESS_MARKER = "_SUCCESS"


def file_landed_envelope(
    bucket: str, key: str, size: int, etag: str, correlation_id: str
) -> dict[str, Any]:
    """A `file.landed` event (schema version 1.0) in its CloudEvents 1.0 envelope."""
    now = datetime.now(UTC).isoformat()
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),  # unique per event; consumers drop repeats of an id
        "source": SOURCE,
        "type": "file.landed",
        "time": now,
        "subject": key,
        "datacontenttype": "application/json",
        "schemaversion": "1.0",
        "correlationid": correlation_id,
        "data": {
            "bucket": bucket,
            "key": key,
            "size": size,
            "etag": etag,  # without the quotes S3 puts around it
            "landed_at": now,
            "source": "producer",
        },
    }


def ordering_key(key: str) -> str:
    """`<domain>/<dataset>`: a batch's files and its `_SUCCESS` stay in order."""
    return "/".join(key.split("/", 2)[:2])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="DOMAIN/DATASET, e.g. sales/orders")
    parser.add_argument("files", nargs="+", type=Path, help="files to land")
    parser.add_argument("--user", default="dev", help="user id in the path (default: dev)")
    parser.add_argument("--file-type", default="csv", help="the dataset's file type folder")
    parser.add_argument("--stack", type=Path, default=Path(".loadbay/stack.json"))
    parser.add_argument("--no-success", action="store_true", help="do not write _SUCCESS")
    args = parser.parse_args()

    stack = json.loads(args.stack.read_text())
    s3_conf = stack["s3"]
    bucket = s3_conf["lz_bucket"]
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_conf["endpoint_url"],
        aws_access_key_id=s3_conf["access_key_id"],
        aws_secret_access_key=s3_conf["secret_access_key"],
        region_name=s3_conf["region"],
        config=Config(s3={"addressing_style": "path"}),
    )
    domain, dataset = args.dataset.split("/")
    batch = f"{domain}/{dataset}/upload_date={int(time.time())}/{args.user}/{args.file_type}"
    # One correlation id per batch: the reload that `_SUCCESS` starts, and its email, carry it.
    correlation_id = str(uuid.uuid4())

    producer = AIOKafkaProducer(bootstrap_servers=stack["kafka"]["bootstrap_servers"], acks="all")

    async def announce(key: str) -> None:
        head = s3.head_object(Bucket=bucket, Key=key)
        event = file_landed_envelope(
            bucket, key, head["ContentLength"], head["ETag"].strip('"'), correlation_id
        )
        # send_and_wait, one at a time: the events reach the partition in this order.
        await producer.send_and_wait(
            TOPIC, value=json.dumps(event).encode(), key=ordering_key(key).encode()
        )
        print(f"landed s3://{bucket}/{key} (event {event['id']})")

    await producer.start()
    try:
        for path in args.files:
            key = f"{batch}/{path.name}"
            s3.upload_file(str(path), bucket, key)
            await announce(key)
        if not args.no_success:
            # Last, once every data file of the batch is in the LZ: it starts the reload.
            key = f"{batch}/{SUCCESS_MARKER}"
            s3.put_object(Bucket=bucket, Key=key, Body=b"")
            await announce(key)
    finally:
        await producer.stop()
    print(f"correlation id: {correlation_id}")


if __name__ == "__main__":
    asyncio.run(main())
