"""The encryption key of connection secrets: refused when missing or the public default outside
dev mode, and rotated (several keys, newest first) with stored secrets resealed."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from loadbay_ingestion import connections
from loadbay_ingestion import remote as remote_s3
from loadbay_ingestion.app import IngestionService
from loadbay_ingestion.crypto import SecretBox
from loadbay_ingestion.rows import Connection
from loadbay_ingestion.settings import DEV_SECRET_KEY, IngestionSettings
from loadbay_platform.rows import row
from loadbay_platform.secrets import InsecureConfiguration
from tests.conftest import User
from tests.ingestion.conftest import Ingestion, Remote, create_connection


def test_outside_dev_mode_the_default_or_a_missing_key_is_refused() -> None:
    for settings in (
        IngestionSettings(),
        IngestionSettings(secret_key=None),
        IngestionSettings(secret_key=SecretStr("")),
        IngestionSettings(secret_keys=[SecretStr(DEV_SECRET_KEY), SecretStr("a-newer-key")]),
    ):
        with pytest.raises(InsecureConfiguration, match="LOADBAY_INGESTION_SECRET_KEY"):
            IngestionService(settings, dev_mode=False)
    IngestionService(IngestionSettings(), dev_mode=True)  # dev mode may use it (with a warning)
    # Rotating away from the default: it may stay as an older key, to open what it sealed.
    rotated = [SecretStr("a-long-random-key"), SecretStr(DEV_SECRET_KEY)]
    IngestionService(IngestionSettings(secret_keys=rotated), dev_mode=False)


def test_loadbay_serve_ingestion_will_not_start_on_the_default_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADBAY_")}
    env["LOADBAY_AUTH__SECRET"] = "a-long-random-jwt-secret-for-this-test-only"
    done = subprocess.run(
        [sys.executable, "-m", "loadbay_cli", "serve", "ingestion", "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "LOADBAY_INGESTION_SECRET_KEY" in done.stderr + done.stdout


async def test_a_secret_sealed_with_an_old_key_works_after_rotation_and_is_resealed(
    api: httpx.AsyncClient, alice: User, remote: Remote, db: asyncpg.Pool, ingestion: Ingestion,
    ingestion_settings: IngestionSettings,
) -> None:  # fmt: skip
    bucket = remote.bucket()
    remote.s3.put_object(Bucket=bucket, Key="a.csv", Body=b"id\n1\n")
    made = await create_connection(api, alice, remote, bucket)  # sealed with the service's key
    (old_key,) = ingestion_settings.encryption_keys()
    old, rotated = SecretBox([old_key]), SecretBox(["the-next-key", old_key])

    async def stored() -> asyncpg.Record:
        async with db.acquire() as conn:
            return await conn.fetchrow(
                "SELECT * FROM connections WHERE name = $1 AND owner_id = $2",
                made["name"], alice.user_id,
            )  # fmt: skip

    before = await stored()
    assert not rotated.is_current(before["secret_access_key_enc"])
    try:
        assert await connections.reseal_secrets(db, rotated) >= 1
        after = await stored()
        assert rotated.is_current(after["secret_access_key_enc"])
        assert rotated.is_current(after["access_key_id_enc"])
        assert after["secret_access_key_enc"] != before["secret_access_key_enc"]
        with pytest.raises(ValueError):
            old.open(after["secret_access_key_enc"])  # sealed with the new key now
        assert SecretBox(["the-next-key"]).open(after["secret_access_key_enc"]) == (
            remote.admin.secret_access_key
        )
        # The resealed keys still reach the bucket.
        service = ingestion.service
        client = remote_s3.remote_client(
            row(Connection, after), ingestion_settings, rotated, service.policy
        )
        async with client as s3:
            assert (await remote_s3.test_access(s3, bucket))["ok"] is True
        # Idempotent: nothing left to reseal.
        assert await connections.reseal_secrets(db, rotated) == 0
    finally:
        # The session's service knows only the old key: seal everything with it again.
        await connections.reseal_secrets(db, SecretBox([old_key, "the-next-key"]))
    assert old.open((await stored())["secret_access_key_enc"]) == remote.admin.secret_access_key
