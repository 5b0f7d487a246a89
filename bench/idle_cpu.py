"""The idle cost of the embedded stack: `loadbay dev` (`make run`) with no work at all.

Starts `loadbay dev` in a fresh state dir on free ports, waits until it wrote `stack.json`
(every service ready), lets it settle, then sums the CPU seconds (user + system) of it and all
its descendants (servers and services) over `--seconds` of wall time, and prints the total in
cores, with each process's share.

    .venv/bin/python bench/idle_cpu.py --seconds 60
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from loadbay_cli.ports import DEV_PORTS, port_variable


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def snapshot(root: psutil.Process) -> dict[int, tuple[str, float]]:
    seen: dict[int, tuple[str, float]] = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            seen[proc.pid] = (" ".join(proc.cmdline())[-60:], cpu_seconds(proc))
        except psutil.Error:
            continue  # ended between two looks
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=15.0, help="idle time before measuring")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="loadbay-bench-idle-"))
    env = {**os.environ, **{port_variable(name): "0" for name in DEV_PORTS}}
    loadbay = Path(sys.executable).with_name("loadbay")
    dev = subprocess.Popen(
        [str(loadbay), "dev", "--state-dir", str(state)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (state / "stack.json").exists():
            if dev.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"loadbay dev did not become ready (logs in {state}/logs)")
            time.sleep(0.5)
        time.sleep(args.settle)
        root = psutil.Process(dev.pid)
        before = snapshot(root)
        started = time.monotonic()
        time.sleep(args.seconds)
        after = snapshot(root)
        wall = time.monotonic() - started
        shares = {
            pid: (name, used - before[pid][1])
            for pid, (name, used) in after.items()
            if pid in before
        }
        total = sum(used for _, used in shares.values())
        print(f"idle {wall:.0f} s: {total / wall:.3f} cores over {len(shares)} processes")
        for name, used in sorted(shares.values(), key=lambda s: -s[1]):
            print(f"  {used / wall:.3f}  {name}")
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(30)
        except subprocess.TimeoutExpired:
            dev.kill()
            dev.wait()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
