"""The `loadbay` command line: run the platform, mint tokens, and drive every product:
reloads (datasets, files, executions), distribution, the bulk loader (graph) and S3
connections (ingestion). Each product's commands are in a module of their own; output.py has
what they share (--output, results on stdout, progress on stderr)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from loadbay_cli.client import CliError
from loadbay_cli.connections import connections_app
from loadbay_cli.datasets import datasets_app
from loadbay_cli.distribution import dist_app
from loadbay_cli.graph import graph_app
from loadbay_cli.ingestion import ingestion_app
from loadbay_cli.output import Output, OutputOpt, console, emit_done, err
from loadbay_cli.reloads import reloads_app

app = typer.Typer(
    help="loadbay: validate files landing in object storage and load them into datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(datasets_app, name="datasets")
app.add_typer(reloads_app)  # upload, files, pending, process, executions, wait, land...
app.add_typer(dist_app, name="dist")
app.add_typer(graph_app, name="graph")
connections_app.add_typer(ingestion_app)  # bindings, schedules and runs
app.add_typer(connections_app, name="connections")


def _version() -> str:
    try:
        return version("loadbay-cli")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        print(f"loadbay {_version()}")
        raise typer.Exit()


@app.callback()
def root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """loadbay: validate files landing in object storage and load them into datasets.

    Every command takes --output table|json: results go to stdout, progress and errors to
    stderr. Exit codes: 0 done, 1 an error (said on stderr), 2 a usage error, 3 a job that
    was waited for (--follow, wait) ended without succeeding."""


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
    output: OutputOpt = Output.table,
) -> None:
    """Mint a dev bearer token, signed with LOADBAY_AUTH__SECRET (table: the token alone)."""
    from loadbay_platform.auth import mint_token
    from loadbay_platform.settings import PlatformSettings

    minted = mint_token(PlatformSettings().auth, user, email, ttl_s=days * 86400)
    found = {"token": minted, "user_id": user, "email": email, "days": days}
    emit_done(found, output, minted)


@app.command()
def asyncapi() -> None:
    """Print the AsyncAPI 3.0 document of loadbay's events (faststream, from the contracts)."""
    from loadbay_platform.asyncapi import asyncapi_document

    print(json.dumps(asyncapi_document(), indent=2))


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


def main() -> None:
    try:
        app()
    except CliError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None
