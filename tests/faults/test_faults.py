"""The fault-injection suite at a small N (LOADBAY_FAULTS_N, 1 by default): real servers, real
`kill -9`s, cut-off S3 and SMTP, poison and duplicate events. scripts/fault_injection.py runs the
same scenarios at a large N and prints the figures."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.lab import FaultLab
from tests.faults.scenarios import FAULTS, ScenarioRun

N = int(os.environ.get("LOADBAY_FAULTS_N", "1"))
ROWS = int(os.environ.get("LOADBAY_FAULTS_ROWS", "60000"))

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
async def lab() -> AsyncIterator[FaultLab]:
    state = Path(tempfile.mkdtemp(prefix="loadbay-faults-"))
    running = FaultLab(state)
    try:
        await running.start()
        yield running
    finally:
        await running.stop()
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.parametrize("scenario", list(FAULTS))
async def test_reloads_survive(lab: FaultLab, scenario: str) -> None:
    run = ScenarioRun(lab, scenario, rows=ROWS)
    await run.setup()
    rng = random.Random(f"{scenario}-{N}")
    for i in range(N + 1):  # the first run gives the table rows for the reader to watch
        outcome = await run.iteration(i, rng)
        assert outcome.problems == [], outcome
        assert outcome.status in ("succeeded", "failed"), outcome
