"""A bounded schemathesis run over every service's OpenAPI document, with a valid token: no
generated request, valid or not, may get a 5xx, and every status answered must be one the
document lists.

The services run in this process (the session's platform, and an HTTP-only ingestion
instance); the schemathesis CLI runs as a subprocess against them on 127.0.0.1, awaited so the
event loop keeps serving. Few examples per operation and a fixed seed keep it bounded and
repeatable; LOADBAY_FUZZ_EXAMPLES and LOADBAY_FUZZ_SEED run it longer or differently by hand.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from loadbay_ingestion.app import IngestionService
from loadbay_platform.settings import PlatformSettings
from tests.conftest import Platform, make_user
from tests.platform.serving import HttpOnly, serving

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES_PER_OPERATION = int(os.environ.get("LOADBAY_FUZZ_EXAMPLES", "10"))
SEED = os.environ.get("LOADBAY_FUZZ_SEED", "8")

# Operations left out of the run, per service, as schemathesis `--exclude-name` options; each
# with its reason.
EXCLUDED: dict[str, list[str]] = {
    "ingestion": [
        # These make the service contact the connection's endpoint (any URL the fuzzer wrote, or
        # AWS itself when it wrote none): tests only ever send traffic to 127.0.0.1.
        "--exclude-name", "POST /connections/{name}/test",
        "--exclude-name", "POST /bindings/{domain}/{dataset}/runs",
        "--exclude-name", "PUT /bindings/{domain}/{dataset}/schedule",
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
async def ingestion_url(settings: PlatformSettings) -> AsyncIterator[str]:
    async with serving(HttpOnly(IngestionService(dev_mode=settings.dev_mode)), settings) as url:
        yield url


SERVICES = ["reload", "loader", "notifier", "distribution", "ingestion"]
AUTHENTICATED_GET = {
    "reload": "/datasets",
    "loader": "/loader",
    "notifier": "/emails",
    "distribution": "/data-products",
    "ingestion": "/connections",
}


async def test_no_generated_request_gets_a_server_error(
    platform: Platform, ingestion_url: str, settings: PlatformSettings, tmp_path: Path
) -> None:
    urls = {**platform.urls, "ingestion": ingestion_url}
    # All five at once: each run waits on its service much of the time.
    results = await asyncio.gather(*(fuzz(s, urls[s], settings, tmp_path) for s in SERVICES))

    runs = dict(zip(SERVICES, results, strict=True))
    failed = {service: report for service, (code, report) in runs.items() if code}
    assert not failed, "\n\n".join(f"== {s} ==\n{r[-15_000:]}" for s, r in failed.items())
    for service, (_, report) in runs.items():
        generated = re.search(r"(\d+) generated", report)
        assert generated and int(generated.group(1)) >= 20, f"{service} hardly ran:\n{report}"


async def fuzz(
    service: str, url: str, settings: PlatformSettings, workdir: Path
) -> tuple[int, str]:
    """Run schemathesis over one service's document; its exit code and report."""
    fuzzer = make_user(settings, "fuzz")
    async with httpx.AsyncClient(base_url=url) as http:
        # A 401 is a documented answer: make sure the run is not all 401s.
        listed = await http.get(AUTHENTICATED_GET[service], headers=fuzzer.headers)
        assert listed.status_code == 200, listed.text
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "run", f"{url}/openapi.json",
        "--header", f"Authorization: Bearer {fuzzer.token}",
        "--checks", "not_a_server_error,status_code_conformance",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(EXAMPLES_PER_OPERATION),
        "--seed", SEED,
        "--workers", "1",
        "--request-timeout", "20",
        "--generation-database", "none",
        "--suppress-health-check", "all",
        "--no-color",
        *EXCLUDED.get(service, []),
        cwd=workdir, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), 240)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, output.decode(errors="replace")
