"""Fixtures of the loader's tests: a fresh database per test module on the session's
PostgreSQL, with the loader's migrations applied; the graph's users of the session's loader."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from loadbay_platform.auth import mint_token
from loadbay_platform.db import close_pool, create_pool, migrate
from loadbay_platform.settings import PlatformSettings, PostgresSettings
from tests.conftest import GRAPH_USERS, StackInfo, User


def graph_user(settings: PlatformSettings, user_id: str) -> User:
    """One of the graph's users (a fixed id the session's loader lists), with a fresh email."""
    email = f"{user_id}_{uuid.uuid4().hex[:6]}@example.com"
    return User(user_id, email, mint_token(settings.auth, user_id, email))


@pytest.fixture
def ann(settings: PlatformSettings) -> User:
    return graph_user(settings, GRAPH_USERS[0])


@pytest.fixture
def ben(settings: PlatformSettings) -> User:
    return graph_user(settings, GRAPH_USERS[1])


@pytest.fixture(scope="module")
async def pg_url(stack: StackInfo) -> AsyncIterator[str]:
    name = f"loader_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(stack.postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, query = stack.postgres_url.partition("?")
    yield f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    admin = await asyncpg.connect(stack.postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def pool(pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn, "loadbay_loader", "loadbay_loader")
    finally:
        await conn.close()
    created = await create_pool(PostgresSettings(url=pg_url), "loadbay_loader")
    try:
        yield created
    finally:
        await close_pool(created)


@pytest.fixture(scope="session")
def moto_endpoint(stack: StackInfo) -> str:
    """The session's S3 server (tests create buckets of their own names on it)."""
    return stack.s3_endpoint_url
