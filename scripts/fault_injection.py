"""The fault-injection suite at a large N, printing figures per scenario.

    .venv/bin/python scripts/fault_injection.py --n 100 --rows 200000 [--scenario loader-kill]
        [--recycle-every 10] [--keep-logs /tmp/loadbay-fault-logs]

Same lab and oracle as tests/faults (real servers, kill -9 of services, PostgreSQL and the
broker, S3 and SMTP cut off, poison and duplicate events). Exits non-zero if any iteration
broke a promise; every problem is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.lab import FaultLab
from tests.faults.scenarios import FAULTS, Outcome, ScenarioRun, summarize


async def main(
    n: int, rows: int, scenarios: list[str], seed: int, recycle_every: int, keep: Path | None
) -> int:
    outcomes: list[Outcome] = []
    for scenario in scenarios:
        rng = random.Random(f"{seed}-{scenario}")
        started = time.monotonic()
        for first in range(0, n, recycle_every):
            # A fresh lab every `recycle_every` iterations: the broker keeps its log in the
            # lab's S3 server (moto), whose listings slow down as the history grows (after
            # about 50 iterations a fetch took minutes), which is the lab, not loadbay.
            count = min(recycle_every, n - first)
            outcomes += await _iterations(scenario, rows, rng, range(first, first + count), keep)
        print(f"{scenario}: {n} iterations in {time.monotonic() - started:.0f}s", flush=True)
    print()
    for line in summarize(outcomes):
        print(line)
    return 1 if any(o.problems or o.status == "stuck" for o in outcomes) else 0


async def _iterations(
    scenario: str, rows: int, rng: random.Random, numbers: range, keep: Path | None
) -> list[Outcome]:
    state = Path(tempfile.mkdtemp(prefix="loadbay-faults-"))
    lab = FaultLab(state)
    outcomes: list[Outcome] = []
    try:
        await lab.start()
        run = ScenarioRun(lab, scenario, rows=rows)
        await run.setup()
        for i in numbers:
            outcome = await run.iteration(i, rng)
            outcomes.append(outcome)
            if outcome.problems:
                print(f"  {scenario} #{i}: {outcome.status}: {outcome.problems}", flush=True)
                if keep is not None:  # the services' logs so far, to find out why
                    await lab.dump_stacks()
                    kept = keep / f"{scenario}-{i}"
                    shutil.copytree(state / "logs", kept, dirs_exist_ok=True)
                    print(f"  logs kept in {kept}", flush=True)
    finally:
        await lab.stop()
        shutil.rmtree(state, ignore_errors=True)
    return outcomes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="iterations per scenario")
    parser.add_argument("--rows", type=int, default=200_000, help="rows per reload")
    parser.add_argument("--scenario", action="append", choices=list(FAULTS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--recycle-every", type=int, default=10, help="iterations per fresh lab (servers)"
    )
    parser.add_argument("--keep-logs", type=Path, help="copy the services' logs of a failed run")
    args = parser.parse_args()
    # The lab's own producer reconnects through broker kills: its errors are expected.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    sys.exit(
        asyncio.run(
            main(
                args.n,
                args.rows,
                args.scenario or list(FAULTS),
                args.seed,
                args.recycle_every,
                args.keep_logs,
            )
        )
    )
