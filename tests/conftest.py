"""Session fixtures: the embedded servers and the services, real and shared by every test.

The servers (Tansu, PostgreSQL, moto S3, aiosmtpd) start once per session; the reload, loader
and notifier services run in this process on the session's event loop. Tests isolate
themselves by using their own dataset names (the `names` fixture).
"""

from __future__ import annotations

import asyncio
import mailbox
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import boto3
import httpx
import pytest

from loadbay_cli.services import service_definition
from loadbay_cli.stack import EmbeddedStack, StackInfo

__all__ = ["StackInfo"]
from loadbay_distribution.app import DistributionService
from loadbay_distribution.settings import DistributionSettings
from loadbay_loader.app import LoaderService
from loadbay_loader.settings import LoaderSettings
from loadbay_platform.auth import mint_token
from loadbay_platform.service import RunningService, run_service
from loadbay_platform.settings import (
    KafkaSettings,
    PlatformSettings,
    PostgresSettings,
    S3Settings,
    SmtpSettings,
)
from loadbay_reload.app import ReloadService
from loadbay_reload.settings import ReloadSettings

# The session's ingestion service and its remote S3 endpoint (one per session: the ingestion
# tests and the CLI's share them).
from tests.ingestion.serving import ingestion, ingestion_settings, remote  # noqa: F401

T = TypeVar("T")
DATA = Path(__file__).parent / "data"
# The bulk loader denies by default: its graph's users, and the buckets it may read.
GRAPH_USERS = ("grapher_ann", "grapher_ben")
GRAPH_SOURCE_BUCKETS = ("graph-sources", "graph-sources-never-created")


@pytest.fixture(scope="session")
def stack() -> Iterator[StackInfo]:
    # Not under pytest's tmp_path: as root, PostgreSQL runs as its own user (pgembed.py), which
    # cannot enter pytest's 0700 folders.
    state = Path(tempfile.mkdtemp(prefix="loadbay-test-stack-"))
    try:
        with EmbeddedStack(state) as running:
            yield running.info
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(stack: StackInfo) -> PlatformSettings:
    return PlatformSettings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, max_retries=2),
        postgres=PostgresSettings(url=stack.postgres_url),
        s3=S3Settings(
            endpoint_url=stack.s3_endpoint_url,
            access_key_id=stack.s3_access_key_id,
            secret_access_key=stack.s3_secret_access_key,  # type: ignore[arg-type]
            region=stack.s3_region,
            lz_bucket=stack.lz_bucket,
            dlz_bucket=stack.dlz_bucket,
        ),
        smtp=SmtpSettings(host=stack.smtp_host, port=stack.smtp_port),
        dev_mode=True,
    )


@dataclass
class Platform:
    urls: dict[str, str]
    running: dict[str, RunningService]
    settings: PlatformSettings


@pytest.fixture(scope="session")
async def platform(settings: PlatformSettings) -> AsyncIterator[Platform]:
    definitions = {
        "reload": ReloadService(ReloadSettings(watcher_enabled=True, watch_interval_s=0.3)),
        "loader": LoaderService(
            LoaderSettings(
                graph_users=list(GRAPH_USERS),
                readable_sources=[f"s3://{b}/" for b in GRAPH_SOURCE_BUCKETS],
            )
        ),
        "notifier": service_definition("notifier"),
        "distribution": DistributionService(DistributionSettings(scheduler_interval_s=0.5)),
    }
    running = {name: RunningService() for name in definitions}
    tasks = [
        asyncio.create_task(run_service(d, settings, port=0, state=running[name]))
        for name, d in definitions.items()
    ]
    try:
        urls: dict[str, str] = {}
        for name, state in running.items():
            await asyncio.wait_for(state.ready.wait(), 30)
            urls[name] = f"http://127.0.0.1:{state.port}"
        async with httpx.AsyncClient() as http:
            for url in urls.values():
                await eventually(lambda u=url: _ready(http, u), within=60)
        yield Platform(urls, running, settings)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _ready(http: httpx.AsyncClient, url: str) -> bool:
    return (await http.get(url + "/readyz")).status_code == 200


async def eventually(
    check: Callable[[], Awaitable[T]], *, within: float = 20.0, interval: float = 0.1
) -> T:
    """Poll `check` until it returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last value: {value!r})")
        await asyncio.sleep(interval)


@dataclass
class User:
    user_id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_user(settings: PlatformSettings, name: str) -> User:
    user_id = f"{name}_{uuid.uuid4().hex[:6]}"
    email = f"{user_id}@example.com"
    return User(user_id, email, mint_token(settings.auth, user_id, email))


@pytest.fixture
def alice(settings: PlatformSettings) -> User:
    return make_user(settings, "alice")


@pytest.fixture
def bob(settings: PlatformSettings) -> User:
    return make_user(settings, "bob")


@pytest.fixture
async def reload_api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.urls["reload"], timeout=30) as client:
        yield client


@pytest.fixture
def names() -> tuple[str, str]:
    """A fresh (domain, dataset) pair for one test."""
    suffix = uuid.uuid4().hex[:8]
    return f"d_{suffix}", f"ds_{suffix}"


@pytest.fixture(scope="session")
def s3(stack: StackInfo) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint_url,
        aws_access_key_id=stack.s3_access_key_id,
        aws_secret_access_key=stack.s3_secret_access_key,
        region_name=stack.s3_region,
    )


@pytest.fixture
async def warehouse(stack: StackInfo) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack.postgres_url)
    try:
        yield conn
    finally:
        await conn.close()


class Mailbox:
    """Reads what the SMTP sink received."""

    def __init__(self, path: str) -> None:
        self.path = path

    def messages_to(self, address: str) -> list[Message]:
        box = mailbox.Maildir(self.path, create=False)
        return [m for m in box if address in (m.get("To") or "")]

    async def wait_for(self, address: str, count: int = 1, within: float = 20) -> list[Message]:
        async def enough() -> list[Message]:
            found = self.messages_to(address)
            return found if len(found) >= count else []

        return await eventually(enough, within=within)


@pytest.fixture(scope="session")
def mail(stack: StackInfo) -> Mailbox:
    return Mailbox(stack.maildir)


def body_text(message: Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    texts = []
    for part in parts:
        if part.get_content_type() in ("text/plain", "text/html"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                texts.append(payload.decode(part.get_content_charset() or "utf-8"))
    return "\n".join(texts)


@pytest.fixture(scope="session")
def stack_db(stack: StackInfo) -> str:
    return stack.postgres_url
