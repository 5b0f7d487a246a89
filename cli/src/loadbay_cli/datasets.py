"""`loadbay datasets`: create, list, show and delete Reload datasets."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from loadbay_cli.client import Api, CliError
from loadbay_cli.output import (
    DatasetArg,
    Output,
    OutputOpt,
    ReloadUrlOpt,
    TokenOpt,
    console,
    emit,
    emit_done,
    record_table,
    rows_table,
    split_dataset,
)

datasets_app = typer.Typer(
    help="Create, list, show and delete Reload datasets.", no_args_is_help=True
)


def reload_api(url: str | None, token: str | None) -> Api:
    return Api("reload", url, token)


def _columns(specs: list[str]) -> list[dict[str, Any]]:
    columns = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "required"):
            raise CliError(f"--column takes NAME:TYPE or NAME:TYPE:required, not {spec!r}")
        columns.append({"name": parts[0], "type": parts[1], "nullable": len(parts) == 2})
    return columns


def _users(specs: list[str]) -> list[dict[str, str]]:
    users = []
    for u in specs:
        uid, sep, mail = u.partition(":")
        if not sep:
            raise CliError(f"--user takes USER_ID:EMAIL, not {u!r}")
        users.append({"user_id": uid, "email": mail})
    return users


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
    output: OutputOpt = Output.table,
    url: ReloadUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create a Reload dataset with a CSV file type and a declared schema."""
    domain, name = split_dataset(dataset)
    body = {
        "domain": domain,
        "name": name,
        "description": description,
        "columns": _columns(column),
        "csv": {"delimiter": delimiter, "quote": quote},
        "authorized_users": _users(user or []),
    }
    created = reload_api(url, token).call("POST", "/datasets", json=body)
    emit_done(
        created,
        output,
        f"created {domain}/{name} (rows land in table {created['warehouse_table']})",
    )


@datasets_app.command("list")
def datasets_list(
    output: OutputOpt = Output.table, url: ReloadUrlOpt = None, token: TokenOpt = None
) -> None:
    """List the datasets you own or are authorized on."""
    rows: list[dict[str, Any]] = reload_api(url, token).call("GET", "/datasets")
    summary = [
        {
            "dataset": f"{d['domain']}/{d['name']}",
            "type": d["dataset_type"],
            "file type": d["file_type"],
            "columns": ", ".join(f"{c['name']}:{c['type']}" for c in d["columns"]),
            "owner": d["owner_id"],
        }
        for d in rows
    ]
    columns = ["dataset", "type", "file type", "columns", "owner"]
    emit(rows, output, lambda: console.print(rows_table(summary, columns)))


@datasets_app.command("show")
def datasets_show(
    dataset: DatasetArg,
    output: OutputOpt = Output.table,
    url: ReloadUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show one dataset: its fields, then its columns."""
    domain, name = split_dataset(dataset)
    found: dict[str, Any] = reload_api(url, token).call("GET", f"/datasets/{domain}/{name}")

    def table() -> None:
        summary = {k: v for k, v in found.items() if k != "columns"}
        console.print(record_table(summary, f"{domain}/{name}"))
        console.print(rows_table(found.get("columns", []), ["name", "type", "nullable"]))

    emit(found, output, table)


@datasets_app.command("delete")
def datasets_delete(
    dataset: DatasetArg,
    output: OutputOpt = Output.table,
    url: ReloadUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Delete a dataset's registration, files and executions (owner only)."""
    domain, name = split_dataset(dataset)
    reload_api(url, token).call("DELETE", f"/datasets/{domain}/{name}")
    emit_done({"dataset": f"{domain}/{name}", "deleted": True}, output, f"deleted {domain}/{name}")
