"""Tying the embedded servers' and services' lifetime to the process that started them.

A child started with `die_with_parent` gets SIGTERM (PostgreSQL: SIGINT, its fast shutdown) from
the kernel when its parent dies, even by `kill -9` (Linux `PR_SET_PDEATHSIG`). The kernel ties
that to the thread that started the child, so a postmaster started off the main thread (a
restart from a worker thread) is not covered: a small watchdog process
(`python -m loadbay_cli.lifetime`) watches the parent and stops the postmaster (fast shutdown)
when the parent is gone, whichever thread started it.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import psutil

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.5
_PG_GRACE_S = 10.0


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` for Popen that makes the child get ``sig`` when this process dies.

    The kernel ties it to the *thread* that forks, so only the main thread's children get it;
    elsewhere (or off Linux) None, and the watchdog or the next start's orphan reaping remain.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


def start_watchdog(pid: int, create_time: float | None) -> subprocess.Popen[bytes]:
    """Watch this process; when it is gone, stop the postmaster `pid` (fast shutdown)."""
    me = psutil.Process()
    argv = [
        sys.executable,
        "-m",
        "loadbay_cli.lifetime",
        "--parent",
        str(me.pid),
        "--parent-started",
        repr(me.create_time()),
        "--postmaster",
        str(pid),
        "--postmaster-started",
        repr(create_time or 0.0),
    ]
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # it must outlive a parent killed with its process group
    )


def _same_process(pid: int, started: float) -> psutil.Process | None:
    try:
        proc = psutil.Process(pid)
        if started and abs(proc.create_time() - started) > 0.01:
            return None  # the PID was reused
        return proc if proc.status() != psutil.STATUS_ZOMBIE else None
    except psutil.Error:
        return None


def _watch(parent: int, parent_started: float, postmaster: int, postmaster_started: float) -> None:
    while _same_process(parent, parent_started) is not None:
        if _same_process(postmaster, postmaster_started) is None:
            return  # stopped normally
        time.sleep(_POLL_S)
    proc = _same_process(postmaster, postmaster_started)
    if proc is None:
        return
    try:
        proc.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        proc.wait(_PG_GRACE_S)
    except psutil.TimeoutExpired:
        proc.kill()
    except psutil.Error:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--parent-started", type=float, required=True)
    parser.add_argument("--postmaster", type=int, required=True)
    parser.add_argument("--postmaster-started", type=float, required=True)
    args = parser.parse_args()
    _watch(args.parent, args.parent_started, args.postmaster, args.postmaster_started)


if __name__ == "__main__":
    main()
