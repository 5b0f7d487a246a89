"""The `loadbay` command as a user runs it, in a subprocess, against the running platform."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import asyncpg
import jwt

from tests.cli.runner import CLI, run_cli
from tests.conftest import Platform, User


async def test_help_lists_every_command() -> None:
    code, out, _ = await run_cli("--help")
    assert code == 0
    for command in (
        "dev",
        "serve",
        "token",
        "datasets",
        "upload",
        "pending",
        "process",
        "delete-files",
        "executions",
        "execution",
        "wait",
        "asyncapi",
        "dist",
        "graph",
        "connections",
    ):
        assert command in out


async def test_token_mints_a_dev_jwt() -> None:
    code, out, _ = await run_cli("token", "--user", "carol", "--email", "carol@example.com")
    assert code == 0
    claims = jwt.decode(out.strip(), options={"verify_signature": False})
    assert claims["sub"] == "carol" and claims["email"] == "carol@example.com"


async def test_a_dataset_from_create_to_rows_with_the_cli(
    platform: Platform, alice: User, names: tuple[str, str], tmp_path: Path, stack_db: str
) -> None:
    domain, name = names
    env = {"LOADBAY_RELOAD_URL": platform.urls["reload"], "LOADBAY_TOKEN": alice.token}
    dataset = f"{domain}/{name}"
    code, out, err = await run_cli(
        "datasets", "create", dataset, "-c", "id:integer:required", "-c", "city:text", env=env
    )
    assert code == 0, err
    assert f"{domain}.{name}" in out
    data = tmp_path / "cities.csv"
    data.write_text("id,city\n1,Oslo\n2,Lima\n")
    code, out, err = await run_cli("upload", dataset, str(data), env=env)
    assert code == 0, err
    assert "pending" in out + err
    code, out, err = await run_cli(
        "process", dataset, "--follow", "--interval", "0.2", "-o", "json", env=env
    )
    assert code == 0, err
    execution = json.loads(out)
    assert (execution["status"], execution["rows"], execution["file_count"]) == (
        "succeeded", 2, 1,
    )  # fmt: skip
    assert "reload started" in err and f"execution {execution['id']}: succeeded" in err
    conn = await asyncpg.connect(stack_db)
    try:
        assert await conn.fetchval(f'SELECT count(*) FROM "{domain}"."{name}"') == 2
    finally:
        await conn.close()
    code, out, _ = await run_cli("executions", dataset, "-o", "json", env=env)
    assert [e["id"] for e in json.loads(out)] == [execution["id"]]
    code, out, _ = await run_cli("wait", execution["id"], env=env)  # ended: at once, a table
    assert code == 0 and "succeeded" in out and execution["id"] in out
    code, _, err = await run_cli("process", dataset, env=env)
    assert code == 1 and "no pending files" in err


async def test_cli_errors_say_what_to_do(tmp_path: Path) -> None:
    env = {"LOADBAY_RELOAD_URL": "", "LOADBAY_TOKEN": "x"}
    process = await asyncio.create_subprocess_exec(
        *CLI,
        "datasets",
        "list",
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 1
    assert "make run" in err.decode()
    code, _, err = await run_cli(
        "datasets",
        "show",
        "no-slash",
        env={"LOADBAY_TOKEN": "x", "LOADBAY_RELOAD_URL": "http://127.0.0.1:9"},
    )
    assert code == 1 and "DOMAIN/NAME" in err


async def test_a_data_product_with_the_cli(
    platform: Platform, alice: User, s3: object, stack_db: str
) -> None:
    name = f"cli_{uuid.uuid4().hex[:6]}"
    bucket = f"cli-src-{name[4:]}"
    s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    s3.put_object(  # type: ignore[attr-defined]
        Bucket=bucket, Key="items_20300101120000_full.csv", Body=b"cp__id,a__name\n1,one\n"
    )
    env = {"LOADBAY_DISTRIBUTION_URL": platform.urls["distribution"], "LOADBAY_TOKEN": alice.token}
    for args in (
        ("dist", "create", name, "--bucket", bucket),
        ("dist", "add-workspace", name, "acme"),
        ("dist", "add-dataset", name, "items", "-c", "cp__id:integer", "-c", "a__name"),
        ("dist", "run", name),
    ):
        code, out, err = await run_cli(*args, env=env)
        assert code == 0, (args, err)
    for _ in range(100):
        code, out, _ = await run_cli("dist", "runs", name, env=env)
        if "succeeded" in out:
            break
        await asyncio.sleep(0.2)
    assert "succeeded" in out
    code, out, _ = await run_cli("dist", "show", name, "-o", "json", env=env)
    assert code == 0
    shown = json.loads(out)
    assert [w["client_id"] for w in shown["workspaces"]] == ["acme"]
    assert '"lsts": "20300101120000"' in out
    conn = await asyncpg.connect(stack_db)
    try:
        assert await conn.fetchval(f'SELECT count(*) FROM "ws_{name}_acme".items') == 1
    finally:
        await conn.close()
    code, out, _ = await run_cli("dist", "delete", name, env=env)
    assert code == 0 and "deleted" in out
