"""The session's ingestion service, shared by the ingestion tests and the CLI's: a second,
"remote" S3 endpoint with its own IAM credentials, and the ingestion service running in this
process against the session stack (with the reload service, whose dataset events tell
ingestion which datasets exist).

The remote endpoint is on 127.0.0.1, which connections may not reach by default: the settings
allow exactly its host and port (LOADBAY_INGESTION_ALLOWED_ENDPOINTS), nothing else local.

The remote endpoint is a moto server that enforces IAM authentication after its first three
requests (`INITIAL_NO_AUTH_ACTION_COUNT`), which create its admin user: from then on only
signed requests with known keys and allowing policies succeed, so wrong keys and missing
permissions fail as they would on AWS.

tests/conftest.py registers these fixtures, so a session has one remote and one ingestion
service whichever tests use them (two would be replicas of one schema, each claiming runs
the other's settings cannot carry out).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from pydantic import SecretStr

from loadbay_cli.stack import free_port
from loadbay_ingestion.app import IngestionService
from loadbay_ingestion.settings import IngestionSettings
from loadbay_platform.service import RunningService, run_service
from loadbay_platform.settings import PlatformSettings

if TYPE_CHECKING:  # tests/conftest.py imports this module
    from tests.conftest import Platform

REGION = "us-east-1"


@dataclass
class Keys:
    access_key_id: str
    secret_access_key: str


@dataclass
class Remote:
    endpoint_url: str
    admin: Keys  # may do anything
    loadbay: Keys  # loadbay's own principal (bucket_policy connections): list + read
    lister: Keys  # may list buckets but not read objects
    s3: Any  # boto3 client as admin

    def bucket(self, prefix: str = "src") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.s3.create_bucket(Bucket=name)
        return name


def _policy(actions: list[str]) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    })  # fmt: skip


def _user(iam: Any, name: str, actions: list[str]) -> Keys:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="access", PolicyDocument=_policy(actions))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="session")
def remote() -> Iterator[Remote]:
    port = free_port()
    state = Path(tempfile.mkdtemp(prefix="loadbay-remote-s3-"))
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3", PYTHONUNBUFFERED="1")
    with (state / "moto.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((state / "moto.log").read_text()) from None
                time.sleep(0.05)
        endpoint = f"http://127.0.0.1:{port}"

        def iam(keys: Keys | None) -> Any:
            return boto3.client(
                "iam", endpoint_url=endpoint, region_name=REGION,
                aws_access_key_id=keys.access_key_id if keys else "bootstrap",
                aws_secret_access_key=keys.secret_access_key if keys else "bootstrap",
            )  # fmt: skip

        admin = _user(iam(None), "admin", ["*"])  # the three unauthenticated requests
        loadbay = _user(iam(admin), "loadbay", ["s3:ListBucket", "s3:GetObject"])
        lister = _user(iam(admin), "lister", ["s3:ListBucket"])
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, region_name=REGION,
            aws_access_key_id=admin.access_key_id, aws_secret_access_key=admin.secret_access_key,
        )  # fmt: skip
        yield Remote(endpoint, admin, loadbay, lister, s3)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def ingestion_settings(remote: Remote) -> IngestionSettings:
    return IngestionSettings(
        principal_arn="arn:aws:iam::123456789012:user/loadbay",
        remote_endpoint_url=remote.endpoint_url,
        remote_access_key_id=remote.loadbay.access_key_id,
        remote_secret_access_key=SecretStr(remote.loadbay.secret_access_key),
        allowed_endpoints=[remote.endpoint_url.removeprefix("http://")],
        secret_keys=[SecretStr("tests-ingestion-key-1")],
        enabled_opt_in_regions=["eu-south-1"],
        # One run at a time: the throttling tests rely on it; the others wait their turn.
        max_concurrent_loads=1,
        poll_interval_s=0.2,
        scheduler_interval_s=0.3,
        heartbeat_interval_s=0.5,
        stale_after_s=5,
        copy_concurrency=4,
        part_size_mib=8,
    )


@dataclass
class Ingestion:
    url: str
    state: RunningService
    service: IngestionService
    reload_url: str


@pytest.fixture(scope="session")
async def ingestion(
    settings: PlatformSettings, ingestion_settings: IngestionSettings, platform: Platform
) -> AsyncIterator[Ingestion]:
    service = IngestionService(ingestion_settings, dev_mode=settings.dev_mode)
    state = RunningService()
    task = asyncio.create_task(run_service(service, settings, port=0, state=state))
    try:
        await asyncio.wait_for(state.ready.wait(), 30)
        yield Ingestion(f"http://127.0.0.1:{state.port}", state, service, platform.urls["reload"])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
