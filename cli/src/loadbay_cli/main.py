"""The `loadbay` command line: run the platform, mint tokens, and drive reload datasets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from loadbay_cli.client import Api, CliError

app = typer.Typer(
    help="loadbay: validate files landing in object storage and load them into datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
datasets_app = typer.Typer(
    help="Create, list, show and delete Reload datasets.", no_args_is_help=True
)
app.add_typer(datasets_app, name="datasets")
dist_app = typer.Typer(
    help="Automated data distribution: data products, client workspaces, datasets and runs.",
    no_args_is_help=True,
)
app.add_typer(dist_app, name="dist")
console = Console()
err = Console(stderr=True)

UrlOpt = Annotated[
    str | None, typer.Option("--url", help="Reload service URL (default: .loadbay/stack.json)")
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="Bearer token (default: $LOADBAY_TOKEN or the dev stack's)"),
]
DatasetArg = Annotated[str, typer.Argument(help="The dataset as DOMAIN/NAME, e.g. sales/orders")]


def _split(dataset: str) -> tuple[str, str]:
    domain, sep, name = dataset.partition("/")
    if not sep or not domain or not name or "/" in name:
        raise CliError(f"name the dataset as DOMAIN/NAME, not {dataset!r}")
    return domain, name


def _api(url: str | None, token: str | None) -> Api:
    return Api("reload", url, token)


def _print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


# -- running the platform ----------------------------------------------------------------------


@app.command()
def dev(
    state_dir: Annotated[Path, typer.Option(help="Where data, logs and stack.json live")] = Path(
        ".loadbay"
    ),
) -> None:
    """Run the whole platform on the embedded default: Kafka (Tansu), PostgreSQL, an S3 server,
    an SMTP sink and every service. Ctrl-C stops everything."""
    from loadbay_cli.devstack import run_dev_stack

    run_dev_stack(state_dir, console)


@app.command()
def serve(
    service: Annotated[
        str, typer.Argument(help="reload, loader, notifier, distribution or ingestion")
    ],
    host: Annotated[
        str, typer.Option(envvar="LOADBAY_HTTP_HOST", help="Address to listen on")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="LOADBAY_HTTP_PORT", help="HTTP port (0 picks a free one)")
    ] = 8000,
) -> None:
    """Run one service. It reads its broker, database, S3 and SMTP from LOADBAY_* variables."""
    from loadbay_cli.services import service_definition
    from loadbay_platform.secrets import InsecureConfiguration, check_platform_secrets
    from loadbay_platform.service import configure_logging, run_service
    from loadbay_platform.settings import PlatformSettings

    settings = PlatformSettings()
    configure_logging(service, settings)
    try:
        definition = service_definition(service)  # a service checks its own settings here
        check_platform_secrets(settings)
    except KeyError as exc:
        raise CliError(exc.args[0]) from exc
    except InsecureConfiguration as exc:
        raise CliError(f"{service} will not start: {exc}") from exc

    async def main() -> None:
        task = asyncio.create_task(run_service(definition, settings, host=host, port=port))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        # `kill -USR1 <pid>` writes where every task is waiting to the log (a stuck service).
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    except InsecureConfiguration as exc:  # a service's own settings, checked as it starts
        raise CliError(f"{service} will not start: {exc}") from exc


def _dump_tasks() -> None:
    import io
    import logging

    out = io.StringIO()
    for t in asyncio.all_tasks():
        out.write(f"--- {t.get_name()}: {t.get_coro()!r}\n")
        t.print_stack(limit=30, file=out)
    logging.getLogger("loadbay.tasks").warning("tasks on SIGUSR1:\n%s", out.getvalue())


@app.command()
def token(
    user: Annotated[str, typer.Option(help="The user id (the token's sub)")],
    email: Annotated[str, typer.Option(help="The user's email address")],
    days: Annotated[int, typer.Option(help="Days until it expires")] = 30,
) -> None:
    """Mint a dev bearer token, signed with LOADBAY_AUTH__SECRET."""
    from loadbay_platform.auth import mint_token
    from loadbay_platform.settings import PlatformSettings

    print(mint_token(PlatformSettings().auth, user, email, ttl_s=days * 86400))


@app.command()
def asyncapi() -> None:
    """Print the AsyncAPI document of loadbay's events (generated from the contracts)."""
    from loadbay_contracts.asyncapi import asyncapi_document

    print(json.dumps(asyncapi_document(), indent=2))


# -- datasets ----------------------------------------------------------------------------------


@datasets_app.command("create")
def datasets_create(
    dataset: DatasetArg,
    column: Annotated[
        list[str],
        typer.Option(
            "--column",
            "-c",
            help="NAME:TYPE[:required], repeat per column, in order. "
            "Types: text integer bigint numeric boolean date timestamp timestamptz",
        ),
    ],
    description: Annotated[str, typer.Option(help="What the dataset holds")] = "",
    delimiter: Annotated[str, typer.Option(help="CSV delimiter")] = ",",
    quote: Annotated[str, typer.Option(help="CSV quote character")] = '"',
    user: Annotated[
        list[str] | None,
        typer.Option("--user", help="Authorized user as USER_ID:EMAIL, repeatable"),
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create a Reload dataset with a CSV file type and a declared schema."""
    domain, name = _split(dataset)
    columns = []
    for spec in column:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "required"):
            raise CliError(f"--column takes NAME:TYPE or NAME:TYPE:required, not {spec!r}")
        columns.append({"name": parts[0], "type": parts[1], "nullable": len(parts) == 2})
    users = []
    for u in user or []:
        uid, sep, mail = u.partition(":")
        if not sep:
            raise CliError(f"--user takes USER_ID:EMAIL, not {u!r}")
        users.append({"user_id": uid, "email": mail})
    body = {
        "domain": domain,
        "name": name,
        "description": description,
        "columns": columns,
        "csv": {"delimiter": delimiter, "quote": quote},
        "authorized_users": users,
    }
    created = _api(url, token).call("POST", "/datasets", json=body)
    console.print(
        f"created [bold]{domain}/{name}[/] (rows land in table {created['warehouse_table']})"
    )


@datasets_app.command("list")
def datasets_list(url: UrlOpt = None, token: TokenOpt = None) -> None:
    """List the datasets you own or are authorized on."""
    rows = _api(url, token).call("GET", "/datasets")
    table = Table("dataset", "type", "file type", "columns", "owner")
    for d in rows:
        cols = ", ".join(f"{c['name']}:{c['type']}" for c in d["columns"])
        table.add_row(
            f"{d['domain']}/{d['name']}", d["dataset_type"], d["file_type"], cols, d["owner_id"]
        )
    console.print(table)


@datasets_app.command("show")
def datasets_show(dataset: DatasetArg, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Show one dataset as JSON."""
    domain, name = _split(dataset)
    _print_json(_api(url, token).call("GET", f"/datasets/{domain}/{name}"))


@datasets_app.command("delete")
def datasets_delete(dataset: DatasetArg, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Delete a dataset's registration, files and executions (owner only)."""
    domain, name = _split(dataset)
    _api(url, token).call("DELETE", f"/datasets/{domain}/{name}")
    console.print(f"deleted {domain}/{name}")


# -- files and executions ----------------------------------------------------------------------


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


@app.command()
def upload(
    dataset: DatasetArg,
    files: Annotated[
        list[Path], typer.Argument(help="Files to upload", exists=True, dir_okay=False)
    ],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Upload one or more files into the dataset's landing zone; they become pending files."""
    domain, name = _split(dataset)
    api = _api(url, token)
    with _transfer_progress() as progress:
        for path in files:
            task = progress.add_task(path.name, total=path.stat().st_size)
            reader = _ProgressReader(path, progress, task)
            try:
                landed = api.call(
                    "POST",
                    f"/datasets/{domain}/{name}/files",
                    files=[("files", (path.name, reader, "text/csv"))],
                )
            finally:
                reader.handle.close()
            for f in landed:
                progress.console.print(f"{f['name']}: pending as file {f['id']} ({f['key']})")


@app.command()
def files(
    dataset: DatasetArg,
    status: Annotated[str | None, typer.Option(help="pending, processing or completed")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List the dataset's files (all, or by status)."""
    domain, name = _split(dataset)
    params = {"status": status} if status else {}
    rows = _api(url, token).call("GET", f"/datasets/{domain}/{name}/files", params=params)
    table = Table("id", "name", "batch", "size", "status", "error")
    for f in rows:
        table.add_row(
            str(f["id"]), f["name"], f["batch"], str(f["size"]), f["status"], f["error"] or ""
        )
    console.print(table)


@app.command()
def pending(dataset: DatasetArg, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """List the dataset's pending files."""
    files(dataset, "pending", url, token)


FileIdsOpt = Annotated[list[int] | None, typer.Option("--file", "-f", help="A file id; repeatable")]


@app.command()
def process(
    dataset: DatasetArg,
    file: FileIdsOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Process Files: reload the dataset from the chosen pending files (all if none given)."""
    domain, name = _split(dataset)
    body = {"file_ids": file} if file else {}
    accepted = _api(url, token).call("POST", f"/datasets/{domain}/{name}/process", json=body)
    console.print(
        f"reload started: execution {accepted['execution_id']} of {len(accepted['files'])} files"
    )


@app.command("delete-files")
def delete_files(
    dataset: DatasetArg,
    file: Annotated[list[int], typer.Option("--file", "-f", help="A pending file id; repeatable")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Permanently delete pending files from the landing zone and the registry."""
    domain, name = _split(dataset)
    gone = _api(url, token).call(
        "POST", f"/datasets/{domain}/{name}/files/delete", json={"file_ids": file}
    )
    for f in gone:
        console.print(f"deleted {f['name']} ({f['key']})")


@app.command()
def executions(
    dataset: DatasetArg,
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 20,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The dataset's executions, newest first."""
    domain, name = _split(dataset)
    rows = _api(url, token).call(
        "GET", f"/datasets/{domain}/{name}/executions", params={"limit": limit}
    )
    table = Table("execution", "status", "trigger", "by", "files", "rows", "started", "reason")
    for e in rows:
        table.add_row(
            e["id"],
            e["status"],
            e["trigger"],
            e["triggered_by"],
            str(e["file_count"]),
            str(e["rows"]),
            e["started_at"],
            e["reason"] or "",
        )
    console.print(table)


@app.command()
def execution(
    execution_id: Annotated[str, typer.Argument(help="The execution id")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """One execution in detail, as JSON."""
    _print_json(_api(url, token).call("GET", f"/executions/{execution_id}"))


@app.command()
def land(
    dataset: DatasetArg,
    files: Annotated[list[Path], typer.Argument(help="Files to land", exists=True, dir_okay=False)],
    success: Annotated[
        bool, typer.Option("--success/--no-success", help="Also land _SUCCESS to start the reload")
    ] = True,
    user: Annotated[str, typer.Option(help="The <user_id> folder of the batch")] = "dev",
    file_type: Annotated[str, typer.Option(help="The <file_type> folder")] = "csv",
) -> None:
    """Write files straight into the landing zone, as an ETL job would:
    <domain>/<dataset>/upload_date=<now>/<user>/<file_type>/<file>, then _SUCCESS.
    Uses the S3 settings of .loadbay/stack.json (or LOADBAY_S3__* variables)."""
    import boto3

    from loadbay_cli.client import read_stack

    domain, name = _split(dataset)
    s3cfg = read_stack().get("s3") or {}
    env = os.environ
    bucket = env.get("LOADBAY_S3__LZ_BUCKET") or s3cfg.get("lz_bucket")
    if not bucket:
        raise CliError("no landing zone bucket: run 'make run' or set LOADBAY_S3__LZ_BUCKET")
    s3 = boto3.client(
        "s3",
        endpoint_url=env.get("LOADBAY_S3__ENDPOINT_URL") or s3cfg.get("endpoint_url"),
        aws_access_key_id=env.get("LOADBAY_S3__ACCESS_KEY_ID") or s3cfg.get("access_key_id"),
        aws_secret_access_key=env.get("LOADBAY_S3__SECRET_ACCESS_KEY")
        or s3cfg.get("secret_access_key"),
        region_name=env.get("LOADBAY_S3__REGION") or s3cfg.get("region"),
    )
    prefix = f"{domain}/{name}/upload_date={int(time.time())}/{user}/{file_type}/"
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
    console.print(
        f"landed {len(files)} file(s) in s3://{bucket}/{prefix}"
        + (" with _SUCCESS" if success else "")
    )


@app.command()
def psql(
    command: Annotated[str | None, typer.Option("-c", help="Run one SQL command and exit")] = None,
) -> None:
    """Open psql on the embedded PostgreSQL (the warehouse: one schema per domain)."""
    from loadbay_cli.client import read_stack
    from loadbay_cli.pgembed import psql_binary

    url = os.environ.get("LOADBAY_POSTGRES__URL") or read_stack().get("postgres", {}).get("url")
    if not url:
        raise CliError("no database: run 'make run' or set LOADBAY_POSTGRES__URL")
    binary = psql_binary()
    if binary is None:
        raise CliError("no psql: pip install 'loadbay-cli[dev]', or put psql on PATH")
    args = [binary, url] + (["-c", command] if command else [])
    os.execv(args[0], args)


# -- distribution ------------------------------------------------------------------------------

DistUrlOpt = Annotated[
    str | None, typer.Option("--url", help="Distribution service URL (default: stack.json)")
]
ProductArg = Annotated[str, typer.Argument(help="The data product's name")]


def _dist(url: str | None, token: str | None) -> Api:
    return Api("distribution", url, token)


@dist_app.command("create")
def dist_create(
    name: ProductArg,
    bucket: Annotated[str, typer.Option(help="Bucket of the source files")],
    prefix: Annotated[str, typer.Option(help="Prefix of the source files")] = "",
    segment: Annotated[list[str] | None, typer.Option(help="Segment name; repeatable")] = None,
    url: DistUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create a data product with its source location and segments."""
    body = {"name": name, "bucket": bucket, "prefix": prefix, "segments": segment or ["default"]}
    _dist(url, token).call("POST", "/data-products", json=body)
    console.print(f"created data product {name} (source s3://{bucket}/{prefix})")


@dist_app.command("list")
def dist_list(url: DistUrlOpt = None, token: TokenOpt = None) -> None:
    """List your data products."""
    table = Table("data product", "source", "segments")
    for p in _dist(url, token).call("GET", "/data-products"):
        table.add_row(p["name"], f"s3://{p['bucket']}/{p['prefix']}", ", ".join(p["segments"]))
    console.print(table)


@dist_app.command("show")
def dist_show(name: ProductArg, url: DistUrlOpt = None, token: TokenOpt = None) -> None:
    """A data product with its workspaces (LSTS per dataset) and datasets, as JSON."""
    api = _dist(url, token)
    _print_json({
        **api.call("GET", f"/data-products/{name}"),
        "workspaces": api.call("GET", f"/data-products/{name}/workspaces"),
        "datasets": api.call("GET", f"/data-products/{name}/datasets"),
    })  # fmt: skip


@dist_app.command("delete")
def dist_delete(name: ProductArg, url: DistUrlOpt = None, token: TokenOpt = None) -> None:
    """Delete a data product (its workspaces' schemas stay in the warehouse)."""
    _dist(url, token).call("DELETE", f"/data-products/{name}")
    console.print(f"deleted data product {name}")


@dist_app.command("add-workspace")
def dist_add_workspace(
    name: ProductArg,
    client_id: Annotated[str, typer.Argument(help="1-255 characters of [0-9A-Za-z_]")],
    segment: Annotated[str, typer.Option(help="The workspace's segment")] = "default",
    url: DistUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Add a client workspace (a PostgreSQL schema) to a segment."""
    made = _dist(url, token).call(
        "POST", f"/data-products/{name}/workspaces",
        json={"client_id": client_id, "segment": segment},
    )  # fmt: skip
    console.print(f"added workspace {client_id} (schema {made['schema']})")


@dist_app.command("add-dataset")
def dist_add_dataset(
    name: ProductArg,
    dataset: Annotated[str, typer.Argument(help="The dataset name, as in the file names")],
    column: Annotated[
        list[str],
        typer.Option("--column", "-c", help="PREFIXED_NAME:TYPE, e.g. cp__id:integer; repeatable"),
    ],
    grain: Annotated[list[str] | None, typer.Option(help="A fact table grain column")] = None,
    segment: Annotated[str, typer.Option(help="The dataset's segment")] = "default",
    url: DistUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Define a dataset by its prefixed columns (cp__, a__, l__, f__, r__, d__)."""
    columns = []
    for spec in column:
        col, _, kind = spec.partition(":")
        columns.append({"name": col, "type": kind or "text"})
    _dist(url, token).call(
        "POST", f"/data-products/{name}/datasets",
        json={"name": dataset, "segment": segment, "columns": columns, "grain": grain or []},
    )  # fmt: skip
    console.print(f"added dataset {dataset} to {name}")


@dist_app.command("run")
def dist_run(name: ProductArg, url: DistUrlOpt = None, token: TokenOpt = None) -> None:
    """Start a distribution run now."""
    started = _dist(url, token).call("POST", f"/data-products/{name}/runs")
    console.print(f"run started: {started['run_id']}")


@dist_app.command("runs")
def dist_runs(name: ProductArg, url: DistUrlOpt = None, token: TokenOpt = None) -> None:
    """The data product's runs, newest first."""
    table = Table("run", "status", "trigger", "started", "problems")
    for r in _dist(url, token).call("GET", f"/data-products/{name}/runs"):
        table.add_row(r["id"], r["status"], r["trigger"], r["started_at"], str(len(r["problems"])))
    console.print(table)


@dist_app.command("show-run")
def dist_show_run(
    run_id: Annotated[str, typer.Argument(help="The run id")],
    url: DistUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """One run with its per-workspace, per-dataset results, as JSON."""
    _print_json(_dist(url, token).call("GET", f"/runs/{run_id}"))


def main() -> None:
    try:
        app()
    except CliError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise SystemExit(1) from None
