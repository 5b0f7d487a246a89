"""`loadbay connections` (continued; main.py merges these in): bind datasets to a connection,
schedule them, run now, and read the runs with their copied, skipped and failed objects."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from loadbay_cli.client import Api
from loadbay_cli.connections import ConnectionArg, ingestion_api
from loadbay_cli.output import (
    Columns,
    DatasetArg,
    IngestionUrlOpt,
    Output,
    OutputOpt,
    TokenOpt,
    console,
    emit,
    emit_done,
    emit_rows,
    err,
    record_table,
    rows_table,
    split_dataset,
)
from loadbay_cli.waiting import FollowOpt, IntervalOpt, Job, TimeoutOpt, finish, wait_for

BINDING_COLUMNS: Columns = [
    "dataset", "connection", ("path", "directory_path"), ("file type", "file_type"),
    "enabled", ("by", "user_id"), ("cron", "schedule.cron"), ("next run", "schedule.next_run_at"),
]  # fmt: skip
RUN_COLUMNS: Columns = [
    ("run", "id"), "status", "trigger", ("copied", "copied_count"),
    ("skipped", "skipped_count"), ("failed", "failed_count"), ("bytes", "bytes_copied"),
    ("started", "started_at"), "reason",
]  # fmt: skip
ingestion_app = typer.Typer()  # merged into `loadbay connections`
RunIdArg = Annotated[str, typer.Argument(help="The run id")]


class DatasetType(StrEnum):
    reload = "reload"
    append = "append"


def _path(dataset: str) -> str:
    domain, name = split_dataset(dataset)
    return f"/bindings/{domain}/{name}"


@ingestion_app.command("bind")
def bind(
    connection: ConnectionArg,
    dataset: DatasetArg,
    directory_path: Annotated[
        str, typer.Option(help="Only objects under this path of the bucket")
    ] = "",
    file_type: Annotated[str, typer.Option(help="Only objects of this extension")] = "csv",
    dataset_type: Annotated[
        DatasetType | None, typer.Option(help="If given, it must be the dataset's type")
    ] = None,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Bind a dataset to the connection's bucket: its objects under the path are ingested."""
    split_dataset(dataset)
    body: dict[str, Any] = {
        "dataset": dataset, "directory_path": directory_path, "file_type": file_type,
    }  # fmt: skip
    if dataset_type:
        body["dataset_type"] = dataset_type.value
    made = ingestion_api(url, token).call("POST", f"/connections/{connection}/bindings", json=body)
    emit_done(made, output, f"bound {dataset} to connection {connection}")


@ingestion_app.command("bindings")
def bindings(
    connection: ConnectionArg,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The datasets bound to a connection, with their schedules."""
    rows = ingestion_api(url, token).call("GET", f"/connections/{connection}/bindings")
    emit_rows(rows, output, BINDING_COLUMNS)


@ingestion_app.command("binding")
def binding(
    dataset: DatasetArg,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """A dataset's binding and schedule."""
    found = ingestion_api(url, token).call("GET", _path(dataset))
    emit(found, output, lambda: console.print(record_table(found, f"binding of {dataset}")))


@ingestion_app.command("unbind")
def unbind(
    dataset: DatasetArg,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Unbind a dataset (its runs' history goes with the binding)."""
    ingestion_api(url, token).call("DELETE", _path(dataset))
    emit_done({"dataset": dataset, "unbound": True}, output, f"unbound {dataset}")


@ingestion_app.command("schedule")
def schedule(
    dataset: DatasetArg,
    cron: Annotated[str, typer.Option(help="Five cron fields, UTC, e.g. '0 * * * *'")],
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Set the dataset's DataIngestion schedule (replaces the one it had)."""
    body = {"job_type": "DataIngestion", "cron": cron}
    found = ingestion_api(url, token).call("PUT", f"{_path(dataset)}/schedule", json=body)
    emit_done(found, output, f"{dataset} runs on '{cron}', next at {found['next_run_at']}")


@ingestion_app.command("unschedule")
def unschedule(
    dataset: DatasetArg,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Remove the dataset's schedule."""
    ingestion_api(url, token).call("DELETE", f"{_path(dataset)}/schedule")
    emit_done({"dataset": dataset, "scheduled": False}, output, f"{dataset} has no schedule now")


def _show_run(found: dict[str, Any], output: Output) -> None:
    def table() -> None:
        lists = ("copied", "skipped", "failed")
        console.print(
            record_table({k: v for k, v in found.items() if k not in lists}, f"run {found['id']}")
        )
        for kind in lists:
            rows = found.get(kind) or []
            if rows:
                console.print(rows_table(rows, list(rows[0]), f"{kind} ({len(rows)})"))

    emit(found, output, table)


def _follow(api: Api, run_id: str, timeout: float, interval: float, output: Output) -> None:
    job = Job(
        what=f"run {run_id}",
        fetch=lambda: dict(api.call("GET", f"/runs/{run_id}")),
        state=lambda r: str(r["status"]),
        active=frozenset({"queued", "running"}),
        succeeded="succeeded",
        progress=lambda r: (
            f"{r['copied_count']} copied, {r['skipped_count']} skipped, {r['failed_count']} failed"
        ),
    )
    found, succeeded = wait_for(job, timeout, interval)
    _show_run(found, output)
    finish(succeeded)


@ingestion_app.command("run")
def run(
    dataset: DatasetArg,
    follow: FollowOpt = False,
    timeout: TimeoutOpt = 3600.0,
    interval: IntervalOpt = 1.0,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Run the dataset's ingestion now (queued until a slot is free)."""
    api = ingestion_api(url, token)
    started = api.call("POST", f"{_path(dataset)}/runs")
    sentence = f"run queued: {started['run_id']}"
    if follow:
        err.print(sentence, markup=False, highlight=False)
        _follow(api, started["run_id"], timeout, interval, output)
        return
    emit_done(started, output, sentence)


@ingestion_app.command("runs")
def runs(
    dataset: DatasetArg,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first")] = 50,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The dataset's ingestion runs, newest first, with their counts."""
    rows = ingestion_api(url, token).call("GET", f"{_path(dataset)}/runs", params={"limit": limit})
    emit_rows(rows, output, RUN_COLUMNS)


@ingestion_app.command("show-run")
def show_run(
    run_id: RunIdArg,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """A run with its copied, skipped and failed objects (and why)."""
    _show_run(ingestion_api(url, token).call("GET", f"/runs/{run_id}"), output)
