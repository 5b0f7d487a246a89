"""Outside dev mode a service refuses to start on the public default JWT secret, and says which
variable to set; with a secret of the operator's, or an OIDC issuer's keys, it starts."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from loadbay_cli.services import service_definition
from loadbay_platform.secrets import InsecureConfiguration
from loadbay_platform.service import run_service
from loadbay_platform.settings import AuthSettings, PlatformSettings
from tests.platform.serving import HttpOnly, serving

LOADBAY = Path(sys.executable).parent / "loadbay"


def _env_without_loadbay(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADBAY_")}
    return {**env, **extra}


async def _serve(env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        str(LOADBAY), "serve", "reload", "--port", "0",
        env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), time.monotonic() - started


async def test_serve_outside_dev_mode_refuses_the_default_secret() -> None:
    code, output, took = await _serve(_env_without_loadbay())

    assert code != 0
    assert "LOADBAY_AUTH__SECRET" in output, output
    assert "will not start" in output, output
    assert "Traceback" not in output, output
    assert took < 30  # refused before reaching for any server


async def test_serve_with_a_secret_gets_past_the_check() -> None:
    # No server listens on this port: the service gets as far as the database and fails there.
    env = _env_without_loadbay(
        LOADBAY_AUTH__SECRET="an-operator-secret-" + "x" * 40,
        LOADBAY_POSTGRES__URL="postgresql://nobody@127.0.0.1:9/none",
    )
    code, output, _ = await _serve(env)

    assert code != 0
    assert "LOADBAY_AUTH__SECRET" not in output, output
    assert "will not start" not in output, output


async def test_run_service_refuses_the_default_secret_outside_dev_mode() -> None:
    settings = PlatformSettings(dev_mode=False, auth=AuthSettings())

    with pytest.raises(InsecureConfiguration, match="LOADBAY_AUTH__SECRET"):
        await asyncio.wait_for(run_service(service_definition("notifier"), settings), 5)


@pytest.mark.parametrize(
    "auth",
    [
        AuthSettings(secret=SecretStr("an-operator-secret-" + "y" * 40)),
        AuthSettings(jwks_url="http://127.0.0.1:9/.well-known/jwks.json"),
    ],
    ids=["own-secret", "jwks"],
)
async def test_run_service_starts_outside_dev_mode_with_real_keys(
    settings: PlatformSettings, auth: AuthSettings
) -> None:
    production = settings.model_copy(update={"dev_mode": False, "auth": auth})

    async with (
        serving(HttpOnly(service_definition("notifier")), production) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        health = await http.get("/healthz")
        unauthenticated = await http.get("/emails")

    assert health.status_code == 200
    assert unauthenticated.status_code == 401
