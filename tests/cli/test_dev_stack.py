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
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    assert "loadbay is running" in output and "stopped" in output
    time.sleep(0.5)
    assert [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE] == []
