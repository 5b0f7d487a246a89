"""Waiting for a job (a reload execution, a bulk load, an ingestion run) to end: polls its
status, writes progress lines on stderr when something changes, and stops at a terminal
status or at the deadline, whichever comes first."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.markup import escape

from loadbay_cli.client import CliError
from loadbay_cli.output import err

# The exit code of a wait whose job ended, but not successfully (a failed load, a cancel).
EXIT_JOB_FAILED = 3

TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds to wait at most, then exit 1")
]
IntervalOpt = Annotated[
    float, typer.Option("--interval", min=0.1, help="Seconds between two looks at the status")
]
FollowOpt = Annotated[
    bool,
    typer.Option(
        "--follow",
        "-f",
        help=f"Wait until it ends, progress on stderr; exit {EXIT_JOB_FAILED} unless it succeeded",
    ),
]


@dataclass(frozen=True)
class Job:
    """How to watch one kind of job."""

    what: str  # "load 1234...", for messages
    fetch: Callable[[], dict[str, Any]]  # its current status document
    state: Callable[[dict[str, Any]], str]  # its status in that document
    active: frozenset[str]  # the statuses of a job that has not ended
    succeeded: str
    progress: Callable[[dict[str, Any]], str]  # one line: what it has done so far


def wait_for(job: Job, timeout: float, interval: float) -> tuple[dict[str, Any], bool]:
    """Poll until `job` reaches a terminal status: (its last document, whether it succeeded).
    CliError when it is still going at the deadline."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    last_line = ""
    while True:
        document = job.fetch()
        status = job.state(document)
        line = f"{job.what}: {status}, {job.progress(document)}"
        if line != last_line:
            elapsed = f"{time.monotonic() - started:6.1f}s"
            err.print(f"[dim]{elapsed}[/] {escape(line)}", highlight=False)
            last_line = line
        if status not in job.active:
            return document, status == job.succeeded
        if time.monotonic() + interval > deadline:
            raise CliError(
                f"{job.what} is still {status} after {timeout:g} s; wait longer with --timeout"
            )
        time.sleep(interval)


def finish(succeeded: bool) -> None:
    """End a wait's command: exit EXIT_JOB_FAILED when the job did not succeed."""
    if not succeeded:
        raise typer.Exit(EXIT_JOB_FAILED)
