"""The fault lab: the embedded servers, every service as its own process (so a kill is a real
`kill -9`), and proxies in front of S3 and SMTP so they can be cut off.

Used by tests/faults/test_faults.py at a small N and by scripts/fault_injection.py at a large N.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx
from aiokafka import AIOKafkaProducer

from loadbay_cli.devstack import ServiceProcesses
from loadbay_cli.stack import EmbeddedStack, StackInfo
from loadbay_contracts import Envelope, FileLanded
from loadbay_platform.auth import mint_token
from loadbay_platform.settings import AuthSettings
from tests.conftest import User
from tests.faults.proxy import FaultProxy

SERVICES = ("reload", "loader", "notifier")


class FaultLab:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.stack = EmbeddedStack(state_dir, persistent_kafka=True)
        self.info: StackInfo | None = None
        self.services: ServiceProcesses | None = None
        self.s3_proxy: FaultProxy | None = None
        self.smtp_proxy: FaultProxy | None = None
        self.producer: AIOKafkaProducer | None = None
        # A new connection per request: a kept-alive one that a service closes (idle timeout,
        # or a kill) as the next request goes out is a ReadError that says nothing of loadbay.
        self.http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))

    async def start(self) -> None:
        # On this thread (blocking a few seconds): the servers then die with this process
        # even if it is killed (PR_SET_PDEATHSIG binds to the thread that starts them).
        info = self.info = self.stack.start()
        s3_port = int(info.s3_endpoint_url.rsplit(":", 1)[1])
        self.s3_proxy = FaultProxy("127.0.0.1", s3_port)
        self.smtp_proxy = FaultProxy(info.smtp_host, info.smtp_port)
        await self.s3_proxy.up()
        await self.smtp_proxy.up()
        self.services = ServiceProcesses(
            info,
            self.state_dir / "logs",
            {
                "LOADBAY_S3__ENDPOINT_URL": f"http://127.0.0.1:{self.s3_proxy.port}",
                "LOADBAY_SMTP__PORT": str(self.smtp_proxy.port),
                # Retries come quickly, so an outage's end is noticed within seconds.
                "LOADBAY_NOTIFIER_RETRY_MAX_S": "2",
                "LOADBAY_NOTIFIER_MAX_ATTEMPTS": "1000",
            },
        )
        self.services.start(SERVICES)
        await asyncio.to_thread(self.services.wait_ready, 180.0)
        self.producer = AIOKafkaProducer(bootstrap_servers=info.kafka_bootstrap_servers, acks="all")
        await self.producer.start()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.producer is not None:
                await self.producer.stop()
        await self.http.aclose()
        if self.services is not None:
            await asyncio.to_thread(self.services.stop)
        for proxy in (self.s3_proxy, self.smtp_proxy):
            if proxy is not None:
                await proxy.down()
        await asyncio.to_thread(self.stack.stop)

    # -- what a user does ------------------------------------------------------------------

    def user(self, name: str) -> User:
        user_id = f"{name}_{uuid.uuid4().hex[:6]}"
        email = f"{user_id}@example.com"
        return User(user_id, email, mint_token(AuthSettings(), user_id, email))

    def url(self, service: str) -> str:
        assert self.services is not None
        return self.services.urls[service]

    def s3(self) -> Any:
        """A client straight to the S3 server (not through the proxy): the test's own view."""
        assert self.info is not None
        return boto3.client(
            "s3",
            endpoint_url=self.info.s3_endpoint_url,
            aws_access_key_id=self.info.s3_access_key_id,
            aws_secret_access_key=self.info.s3_secret_access_key,
            region_name=self.info.s3_region,
        )

    async def connect(self) -> asyncpg.Connection:
        assert self.info is not None
        return await asyncpg.connect(self.info.postgres_url)

    async def announce(self, bucket: str, key: str, size: int, etag: str) -> None:
        """Produce `file.landed` as an upstream ETL job does."""
        assert self.producer is not None
        event = FileLanded(bucket=bucket, key=key, size=size, etag=etag)
        envelope = Envelope.wrap(event, source="faults")
        await self.producer.send_and_wait(
            event.topic(), envelope.model_dump_json().encode(), key=event.ordering_key().encode()
        )

    async def publish_raw(self, topic: str, value: bytes) -> None:
        assert self.producer is not None
        await self.producer.send_and_wait(topic, value)

    async def wait_ready(self, within_s: float = 180.0) -> None:
        """Until every service answers /readyz (one restarted after a kill takes seconds)."""
        assert self.services is not None
        await asyncio.to_thread(self.services.wait_ready, within_s)

    async def dump_stacks(self) -> None:
        """Ask every running service where its tasks wait (SIGUSR1: written to its log)."""
        assert self.services is not None
        for proc in self.services.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGUSR1)
        await asyncio.sleep(1.0)

    # -- faults ----------------------------------------------------------------------------

    async def kill_service(self, name: str) -> None:
        assert self.services is not None
        await asyncio.to_thread(self.services.restart, name, kill=True)

    async def kill_postgres(self) -> None:
        await asyncio.to_thread(self.stack.restart_postgres, kill=True)

    async def kill_broker(self) -> None:
        await asyncio.to_thread(self.stack.restart_kafka, kill=True)

    async def cut_off(self, proxy: FaultProxy, seconds: float) -> None:
        await proxy.down()
        await asyncio.sleep(seconds)
        await proxy.up()
