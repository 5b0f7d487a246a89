"""`loadbay dev` (what `make run` runs): starts everything, writes stack.json, stops on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil


def test_dev_stack_starts_everything_and_stops_cleanly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "loadbay_cli", "dev", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
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
        for url in stack["services"].values():
            assert httpx.get(url + "/readyz").status_code == 200
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
    # Under 5 s on an idle machine; generous here, as the machine running tests may be busy.
    assert stopping_took < 20, f"Ctrl-C took {stopping_took:.1f}s"
    assert not stack_file.exists(), "a stopped stack leaves no stack.json behind"
    time.sleep(0.5)
    assert [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE] == []


def test_killing_the_dev_stack_leaves_no_server_running(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "loadbay_cli", "dev", "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack_file = state / "stack.json"
    deadline = time.monotonic() + 90
    while not stack_file.exists():
        assert process.poll() is None, "loadbay dev exited"
        assert time.monotonic() < deadline, "stack.json was not written in 90 s"
        time.sleep(0.25)
    servers = psutil.Process(process.pid).children(recursive=True)
    postmaster = _postmaster_of(state)
    assert postmaster is not None  # daemonized by pg_ctl: not among the children
    servers.append(postmaster)

    process.kill()  # no cleanup code runs
    process.wait()

    def still_running() -> list[str]:
        return [
            " ".join(p.cmdline()[:3])
            for p in servers
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        ]

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
    pidfile = state / "pgdata" / "postmaster.pid"
    if not pidfile.exists():
        return None
    return psutil.Process(int(pidfile.read_text().split()[0]))
