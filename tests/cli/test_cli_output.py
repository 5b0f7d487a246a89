"""What every command shares: --version, JSON on stdout with stable keys, and a clear one-line
error with a non-zero exit, never a traceback, when a service cannot be reached."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import jwt
import psutil

from loadbay_cli.stack import free_port
from tests.cli.runner import run_cli

# Commands of every product, each against a service that is not there.
UNREACHABLE = (
    ("reload", ("wait", "7f4e0c4e-0000-4000-8000-000000000000")),
    ("distribution", ("dist", "list", "-o", "json")),
    ("loader", ("graph", "status", "7f4e0c4e-0000-4000-8000-000000000000")),
    ("ingestion", ("connections", "runs", "sales/orders", "-o", "json")),
)


async def test_version() -> None:
    code, out, _ = await run_cli("--version")
    assert code == 0 and out.startswith("loadbay ") and out.split()[1][0].isdigit()


async def test_token_as_json_has_stable_keys() -> None:
    code, out, _ = await run_cli(
        "token", "--user", "dan", "--email", "dan@example.com", "-o", "json"
    )
    assert code == 0
    minted = json.loads(out)
    assert set(minted) == {"token", "user_id", "email", "days"}
    assert jwt.decode(minted["token"], options={"verify_signature": False})["sub"] == "dan"


async def test_an_unreachable_service_is_one_clear_line(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    async def attempt(service: str, args: tuple[str, ...]) -> None:
        env = {f"LOADBAY_{service.upper()}_URL": closed, "LOADBAY_TOKEN": "x"}
        code, out, err = await run_cli(*args, env=env, cwd=tmp_path)
        assert code == 1 and out == "", (args, out, err)
        assert err.startswith(f"error: cannot reach the {service} service at {closed}"), err
        assert f"LOADBAY_{service.upper()}_URL" in err and err.count("\n") == 1, err
        assert "Traceback" not in err

    await asyncio.gather(*(attempt(service, args) for service, args in UNREACHABLE))


def _stack(folder: Path, owner: dict[str, object], services: dict[str, str]) -> None:
    (folder / ".loadbay").mkdir()
    (folder / ".loadbay" / "stack.json").write_text(
        json.dumps({"owner": owner, "services": services, "token": "x"})
    )


async def test_a_stack_file_of_a_platform_that_is_not_running(tmp_path: Path) -> None:
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()  # its pid names no process now
    stopped, answering = tmp_path / "stopped", tmp_path / "silent"
    stopped.mkdir()
    answering.mkdir()
    closed = f"http://127.0.0.1:{free_port()}"
    _stack(stopped, {"pid": gone.pid, "started": 1.0}, {"loader": closed})
    me = psutil.Process(os.getpid())  # alive: the stack's owner, but its services are gone
    _stack(answering, {"pid": me.pid, "started": me.create_time()}, {"loader": closed})
    env = {"LOADBAY_LOADER_URL": "", "LOADBAY_TOKEN": ""}

    code, out, err = await run_cli("graph", "list", env=env, cwd=stopped)
    assert code == 1 and out == "" and "Traceback" not in err
    assert "the platform is not running" in err and "make run" in err

    code, out, err = await run_cli("graph", "list", env=env, cwd=answering)
    assert code == 1 and out == "" and "Traceback" not in err
    assert f"cannot reach the loader service at {closed}" in err
    assert "the platform in .loadbay/stack.json is not answering" in err
