"""Files and executions of Reload datasets: upload or land files, list them, process them,
and follow the executions."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from loadbay_cli.client import Api, CliError, read_stack
from loadbay_cli.datasets import reload_api
from loadbay_cli.output import (
    Columns,
    DatasetArg,
    Output,
    OutputOpt,
    ReloadUrlOpt,
    TokenOpt,
    console,
    emit,
    emit_done,
    emit_rows,
    err,
    record_table,
    split_dataset,
)
from loadbay_cli.waiting import FollowOpt, IntervalOpt, Job, TimeoutOpt, finish, wait_for

reloads_app = typer.Typer()
FileIdsOpt = Annotated[list[int] | None, typer.Option("--file", "-f", help="A file id; repeatable")]
FILE_COLUMNS: Columns = ["id", "name", "batch", "size", "status", "error"]
EXECUTION_COLUMNS: Columns = [
    ("execution", "id"), "status", "trigger", ("by", "triggered_by"), ("files", "file_count"),
    "rows", ("started", "started_at"), "reason",
]  # fmt: skip


def _transfer_progress() -> Progress:
    """A progress bar per file, in bytes, on stderr."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
    )


class _ProgressReader:
    """Feeds a file to httpx while advancing a progress bar."""

    def __init__(self, path: Path, progress: Progress, task: Any) -> None:
        self.handle = path.open("rb")
        self.progress = progress
        self.task = task

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.progress.advance(self.task, len(chunk))
        return chunk


@reloads_app.command()
def upload(
    dataset: DatasetArg,
    files: Annotated[
        list[Path], typer.Argument(help="Files to upload", exists=True, dir_okay=False)
    ],
    output: OutputOpt = Output.table,
    url: ReloadUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Upload one or more files into the dataset's landing zone; they become pending files."""
    domain, name = split_dataset(dataset)
    api = reload_api(url, token)
    landed: list[dict[str, Any]] = []
    with _transfer_progress() as progress:
        for path in files:
            task = progress.add_task(path.name, total=path.stat().st_size)
            reader = _ProgressReader(path, progress, task)
            try:
                landed += api.call(
                    "POST",
                    f"/datasets/{domain}/{name}/files",
                    files=[("files", (path.name, reader, "text/csv"))],
                )
            finally:
                reader.handle.close()
    emit_rows(landed, output, ["id", "name", "status", "key"], "uploaded: now pending")


@reloads_app.command()
def files(
    dataset: DatasetArg,
    status: Annotated[str | None, typer.Option(help="pending, processing or completed")] = None,
    output: OutputOpt = Output.table,
    url: ReloadUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List the dataset's files (all, or by status)."""
    domain, name = split_dataset(dataset)
    params = {"status": status} if status else {}
    rows = reload_api(url, token).call("GET", f"/datasets/{domain}/{name}/files", params=params)
    emit_rows(rows, output, FILE_COLUMNS)


@reloads_app.command()
def pending(
    dataset: DatasetArg,
    output: OutputOpt = Output.table,
    url: ReloadUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List the dataset's pending files."""
    files(dataset, "pending", output, url, token)


@reloads_app.command()
def process(
    dataset: DatasetArg,
    file: FileIdsOpt = None,
    follow: FollowOpt = False,
    timeout: TimeoutOpt = 3600.0,
    interval: IntervalOpt = 1.0,
    output: OutputOpt = Output.table,
    url: ReloadUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Process Files: reload the dataset from the chosen pending files (all if none given)."""
    domain, name = split_dataset(dataset)
    body = {"file_ids": file} if file else {}
    api = reload_api(url, token)
    accepted = api.call("POST", f"/datasets/{domain}/{name}/process", json=body)
    sentence = (
        f"reload started: execution {accepted['execution_id']} of {len(accepted['files'])} files"
    )
    if follow:
        err.print(sentence, markup=False, highlight=False)
        _follow(api, accepted["execution_id"], timeout, interval, output)
        return
    emit_done(accepted, output, sentence)


@reloads_app.command("delete-files")
def delete_files(
    dataset: DatasetArg,
    file: Annotated[list[int], typer.Option("--file", "-f", help="A pending file id; repeatable")],
    output: OutputOpt = Output.table,
    url: ReloadUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Permanently delete pending files from the landing zone and the registry."""
    domain, name = split_dataset(dataset)
    gone = reload_api(url, token).call(
        "POST", f"/datasets/{domain}/{name}/files/delete", json={"file_ids": file}
    )
    emit_rows(gone, output, ["id", "name", "key"], "deleted")


@reloads_app.command()
def executions(
    dataset: DatasetArg,
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 20,
    output: OutputOpt = Output.table,
    url: ReloadUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The dataset's executions, newest first."""
    domain, name = split_dataset(dataset)
    rows = reload_api(url, token).call(
        "GET", f"/datasets/{domain}/{name}/executions", params={"limit": limit}
    )
    emit_rows(rows, output, EXECUTION_COLUMNS)


ExecutionArg = Annotated[str, typer.Argument(help="The execution id")]


def _show_execution(found: dict[str, Any], output: Output) -> None:
    emit(found, output, lambda: console.print(record_table(found, f"execution {found['id']}")))


@reloads_app.command()
def execution(
    execution_id: ExecutionArg,
    output: OutputOpt = Output.table,
    url: ReloadUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """One execution in detail."""
    _show_execution(reload_api(url, token).call("GET", f"/executions/{execution_id}"), output)


def _follow(api: Api, execution_id: str, timeout: float, interval: float, output: Output) -> None:
    job = Job(
        what=f"execution {execution_id}",
        fetch=lambda: dict(api.call("GET", f"/executions/{execution_id}")),
        state=lambda e: str(e["status"]),
        active=frozenset({"running"}),
        succeeded="succeeded",
        progress=lambda e: f"{e['file_count']} files, {e['rows']} rows",
    )
    found, succeeded = wait_for(job, timeout, interval)
    _show_execution(found, output)
    finish(succeeded)


@reloads_app.command()
def wait(
    execution_id: ExecutionArg,
    timeout: TimeoutOpt = 3600.0,
    interval: IntervalOpt = 1.0,
    output: OutputOpt = Output.table,
    url: ReloadUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Wait until a reload execution ends, progress on stderr; then show it. Exits 0 when it
    succeeded, 3 when it failed, 1 at the timeout."""
    _follow(reload_api(url, token), execution_id, timeout, interval, output)


@reloads_app.command()
def land(
    dataset: DatasetArg,
    files: Annotated[list[Path], typer.Argument(help="Files to land", exists=True, dir_okay=False)],
    success: Annotated[
        bool, typer.Option("--success/--no-success", help="Also land _SUCCESS to start the reload")
    ] = True,
    user: Annotated[str, typer.Option(help="The <user_id> folder of the batch")] = "dev",
    file_type: Annotated[str, typer.Option(help="The <file_type> folder")] = "csv",
    output: OutputOpt = Output.table,
) -> None:
    """Write files straight into the landing zone, as an ETL job would:
    <domain>/<dataset>/upload_date=<now>/<user>/<file_type>/<file>, then _SUCCESS.
    Uses the S3 settings of .loadbay/stack.json (or LOADBAY_S3__* variables)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    domain, name = split_dataset(dataset)
    s3cfg = read_stack().get("s3") or {}
    env = os.environ
    bucket = env.get("LOADBAY_S3__LZ_BUCKET") or s3cfg.get("lz_bucket")
    if not bucket:
        raise CliError("no landing zone bucket: run 'make run' or set LOADBAY_S3__LZ_BUCKET")
    endpoint = env.get("LOADBAY_S3__ENDPOINT_URL") or s3cfg.get("endpoint_url")
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env.get("LOADBAY_S3__ACCESS_KEY_ID") or s3cfg.get("access_key_id"),
        aws_secret_access_key=env.get("LOADBAY_S3__SECRET_ACCESS_KEY")
        or s3cfg.get("secret_access_key"),
        region_name=env.get("LOADBAY_S3__REGION") or s3cfg.get("region"),
    )
    prefix = f"{domain}/{name}/upload_date={int(time.time())}/{user}/{file_type}/"
    try:
        with _transfer_progress() as progress:
            for path in files:
                task = progress.add_task(path.name, total=path.stat().st_size)
                s3.upload_file(
                    str(path),
                    bucket,
                    prefix + path.name,
                    Callback=lambda n, task=task: progress.advance(task, n),
                )
        if success:
            s3.put_object(Bucket=bucket, Key=prefix + "_SUCCESS", Body=b"")
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"cannot write to s3://{bucket}/ at {endpoint or 'AWS'}: {exc}") from exc
    keys = [prefix + p.name for p in files] + ([prefix + "_SUCCESS"] if success else [])
    emit_done(
        {"bucket": bucket, "prefix": prefix, "keys": keys},
        output,
        f"landed {len(files)} file(s) in s3://{bucket}/{prefix}"
        + (" with _SUCCESS" if success else ""),
    )
