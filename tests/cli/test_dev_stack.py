"""`loadbay dev` (what `make run` runs): starts everything, writes stack.json, stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import psutil

from loadbay_cli.ports import DEV_PORTS, port_variable
from loadbay_cli.procs import free_port


def _dev_env(ports: dict[str, int]) -> dict[str, str]:
    """The environment for `loadbay dev` with these ports (0: a free one), never the defaults,
    so a test never clashes with a `make run` or another test run on this machine."""
    return {**os.environ, **{port_variable(name): str(ports[name]) for name in DEV_PORTS}}


async def _database_name(url: str) -> str:
    conn = await asyncpg.connect(url, timeout=30)
    try:
        return str(await conn.fetchval("SELECT current_database()"))
    finally:
        await conn.close()


def test_dev_stack_starts_everything_on_its_ports_and_stops_cleanly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # Fixed ports, as `make run` has (free ones here, not the defaults, to never clash).
    ports = {name: free_port() for name in DEV_PORTS}
    process = subprocess.Popen(
        [sys.executable, "-m", "loadbay_cli", "dev", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_dev_env(ports),
    )
    stack_file = state / "stack.json"
    try:
        deadline = time.monotonic() + 90
        while not stack_file.exists():
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "stack.json was not written in 90 s"
            time.sleep(0.25)
        stack = json.loads(stack_file.read_text())
        assert set(stack) >= {"kafka", "postgres", "s3", "smtp", "services", "token"}
        assert set(stack["s3"]) >= {
            "endpoint_url",
            "access_key_id",
            "secret_access_key",
            "region",
            "lz_bucket",
            "dlz_bucket",
        }
        assert set(stack["services"]) == {
            "reload",
            "loader",
            "notifier",
            "distribution",
            "ingestion",
        }
        for name, url in stack["services"].items():
            assert url == f"http://127.0.0.1:{ports[name]}"
            assert httpx.get(url + "/readyz").status_code == 200
        # The web console: its own process on its port, signed in as the dev user.
        assert stack["console"]["url"] == f"http://127.0.0.1:{ports['console']}"
        home = httpx.get(stack["console"]["url"] + "/", follow_redirects=True)
        assert home.status_code == 200 and "Reload datasets" in home.text
        assert "dev" in home.text
        docs = httpx.get(stack["services"]["reload"] + "/docs")
        assert "/docs-assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
        assert httpx.get(
            stack["services"]["reload"] + "/docs-assets/swagger-ui-bundle.js"
        ).is_success
        assert stack["kafka"]["bootstrap_servers"] == f"127.0.0.1:{ports['kafka']}"
        assert stack["s3"]["endpoint_url"] == f"http://127.0.0.1:{ports['s3']}"
        assert stack["smtp"]["port"] == ports["smtp"]
        # PostgreSQL answers on TCP (for any SQL client) and on its unix socket.
        tcp_url = stack["postgres"]["url"]
        assert tcp_url == f"postgresql://postgres@127.0.0.1:{ports['postgres']}/loadbay"
        assert asyncio.run(_database_name(tcp_url)) == "loadbay"
        assert asyncio.run(_database_name(stack["postgres"]["socket_url"])) == "loadbay"
        datasets = httpx.get(
            stack["services"]["reload"] + "/datasets",
            headers={"Authorization": f"Bearer {stack['token']}"},
        )
        assert datasets.status_code == 200
        children = psutil.Process(process.pid).children(recursive=True)
        assert children
    finally:
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
    stopping_took = time.monotonic() - interrupted
    assert process.returncode == 0, output
    assert "loadbay is running" in output and "stopped" in output
    assert f"127.0.0.1:{ports['postgres']}/loadbay" in output  # the summary names the TCP URL
    assert f"console   http://127.0.0.1:{ports['console']}" in output
    # Under 5 s on an idle machine; generous here, as the machine running tests may be busy.
    assert stopping_took < 20, f"Ctrl-C took {stopping_took:.1f}s"
    assert not stack_file.exists(), "a stopped stack leaves no stack.json behind"
    time.sleep(0.5)
    assert [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE] == []


def test_a_port_in_use_is_named_with_its_variable_and_nothing_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ports = dict.fromkeys(DEV_PORTS, 0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports["postgres"] = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "loadbay_cli", "dev", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            env={**_dev_env(ports), "COLUMNS": "200"},
            timeout=120,
            check=False,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    out = " ".join((result.stdout + result.stderr).split())
    assert f"port {ports['postgres']} (postgres) is in use" in out
    assert "LOADBAY_DEV_POSTGRES_PORT" in out
    assert not (state / "stack.json").exists()


def test_killing_the_dev_stack_leaves_no_server_running(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "loadbay_cli", "dev", "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_dev_env(dict.fromkeys(DEV_PORTS, 0)),
    )
    stack_file = state / "stack.json"
    deadline = time.monotonic() + 90
    while not stack_file.exists():
        assert process.poll() is None, "loadbay dev exited"
        assert time.monotonic() < deadline, "stack.json was not written in 90 s"
        time.sleep(0.25)
    servers = psutil.Process(process.pid).children(recursive=True)
    postmaster = _postmaster_of(state)
    assert postmaster is not None
    assert postmaster.pid in {p.pid for p in servers}  # a child, stopped by PID

    process.kill()  # no cleanup code runs
    process.wait()

    def still_running() -> list[str]:
        alive = []
        for p in servers:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(" ".join(p.cmdline()[:3]))
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                pass  # it ended between two looks: what the test waits for
        return alive

    deadline = time.monotonic() + 30
    while still_running() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert still_running() == []

    # A kill leaves stack.json behind; the CLI must see that it is stale, not "connection
    # refused" (it reads .loadbay/stack.json from the working directory).
    assert stack_file.exists()
    (tmp_path / ".loadbay").mkdir()
    (tmp_path / ".loadbay" / "stack.json").write_text(stack_file.read_text())
    result = subprocess.run(
        [sys.executable, "-m", "loadbay_cli", "datasets", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "the platform is not running" in result.stdout + result.stderr


def _postmaster_of(state: Path) -> psutil.Process | None:
    for pidfile in state.glob("pgdata-*/postmaster.pid"):
        return psutil.Process(int(pidfile.read_text().split()[0]))
    return None
