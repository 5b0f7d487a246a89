"""The fault-injection suite at a large N, printing figures per scenario.

    .venv/bin/python scripts/fault_injection.py --n 100 --rows 200000 [--scenario loader-kill]

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


async def main(n: int, rows: int, scenarios: list[str], seed: int) -> int:
    state = Path(tempfile.mkdtemp(prefix="loadbay-faults-"))
    lab = FaultLab(state)
    outcomes: list[Outcome] = []
    try:
        await lab.start()
        for scenario in scenarios:
            run = ScenarioRun(lab, scenario, rows=rows)
            await run.setup()
            rng = random.Random(f"{seed}-{scenario}")
            started = time.monotonic()
            for i in range(n):
                outcome = await run.iteration(i, rng)
                outcomes.append(outcome)
                if outcome.problems:
                    print(f"  {scenario} #{i}: {outcome.status}: {outcome.problems}", flush=True)
            print(f"{scenario}: {n} iterations in {time.monotonic() - started:.0f}s", flush=True)
    finally:
        await lab.stop()
        shutil.rmtree(state, ignore_errors=True)
    print()
    for line in summarize(outcomes):
        print(line)
    return 1 if any(o.problems or o.status == "stuck" for o in outcomes) else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="iterations per scenario")
    parser.add_argument("--rows", type=int, default=200_000, help="rows per reload")
    parser.add_argument("--scenario", action="append", choices=list(FAULTS))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    # The lab's own producer reconnects through broker kills: its errors are expected.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    sys.exit(asyncio.run(main(args.n, args.rows, args.scenario or list(FAULTS), args.seed)))
