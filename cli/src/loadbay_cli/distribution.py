"""`loadbay dist`: automated data distribution: data products, client workspaces, their
datasets and runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from loadbay_cli.client import Api
from loadbay_cli.output import (
    Columns,
    DistUrlOpt,
    Output,
    OutputOpt,
    TokenOpt,
    console,
    emit,
    emit_document,
    emit_done,
    rows_table,
)

dist_app = typer.Typer(
    help="Automated data distribution: data products, client workspaces, datasets and runs.",
    no_args_is_help=True,
)
ProductArg = Annotated[str, typer.Argument(help="The data product's name")]


def _dist(url: str | None, token: str | None) -> Api:
    return Api("distribution", url, token)


@dist_app.command("create")
def dist_create(
    name: ProductArg,
    bucket: Annotated[str, typer.Option(help="Bucket of the source files")],
    prefix: Annotated[str, typer.Option(help="Prefix of the source files")] = "",
    segment: Annotated[list[str] | None, typer.Option(help="Segment name; repeatable")] = None,
    output: OutputOpt = Output.table,
    url: DistUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create a data product with its source location and segments."""
    body = {"name": name, "bucket": bucket, "prefix": prefix, "segments": segment or ["default"]}
    created = _dist(url, token).call("POST", "/data-products", json=body)
    emit_done(created, output, f"created data product {name} (source s3://{bucket}/{prefix})")


@dist_app.command("list")
def dist_list(
    output: OutputOpt = Output.table, url: DistUrlOpt = None, token: TokenOpt = None
) -> None:
    """List your data products."""
    rows: list[dict[str, Any]] = _dist(url, token).call("GET", "/data-products")
    summary = [
        {"data product": p["name"], "source": f"s3://{p['bucket']}/{p['prefix']}",
         "segments": p["segments"]}
        for p in rows
    ]  # fmt: skip
    columns = ["data product", "source", "segments"]
    emit(rows, output, lambda: console.print(rows_table(summary, columns)))


@dist_app.command("show")
def dist_show(
    name: ProductArg,
    output: OutputOpt = Output.table,
    url: DistUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """A data product with its workspaces (LSTS per dataset) and datasets."""
    api = _dist(url, token)
    product: dict[str, Any] = api.call("GET", f"/data-products/{name}")
    workspaces: list[dict[str, Any]] = api.call("GET", f"/data-products/{name}/workspaces")
    datasets: list[dict[str, Any]] = api.call("GET", f"/data-products/{name}/datasets")

    emit_document({**product, "workspaces": workspaces, "datasets": datasets}, output)


@dist_app.command("delete")
def dist_delete(
    name: ProductArg,
    output: OutputOpt = Output.table,
    url: DistUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Delete a data product (its workspaces' schemas stay in the warehouse)."""
    _dist(url, token).call("DELETE", f"/data-products/{name}")
    emit_done({"name": name, "deleted": True}, output, f"deleted data product {name}")


@dist_app.command("add-workspace")
def dist_add_workspace(
    name: ProductArg,
    client_id: Annotated[str, typer.Argument(help="1-255 characters of [0-9A-Za-z_]")],
    segment: Annotated[str, typer.Option(help="The workspace's segment")] = "default",
    output: OutputOpt = Output.table,
    url: DistUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Add a client workspace (a PostgreSQL schema) to a segment."""
    made = _dist(url, token).call(
        "POST", f"/data-products/{name}/workspaces",
        json={"client_id": client_id, "segment": segment},
    )  # fmt: skip
    emit_done(made, output, f"added workspace {client_id} (schema {made['schema']})")


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
    output: OutputOpt = Output.table,
    url: DistUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Define a dataset by its prefixed columns (cp__, a__, l__, f__, r__, d__)."""
    columns = []
    for spec in column:
        col, _, kind = spec.partition(":")
        columns.append({"name": col, "type": kind or "text"})
    made = _dist(url, token).call(
        "POST", f"/data-products/{name}/datasets",
        json={"name": dataset, "segment": segment, "columns": columns, "grain": grain or []},
    )  # fmt: skip
    emit_done(made or {"name": dataset}, output, f"added dataset {dataset} to {name}")


@dist_app.command("run")
def dist_run(
    name: ProductArg,
    output: OutputOpt = Output.table,
    url: DistUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Start a distribution run now."""
    started = _dist(url, token).call("POST", f"/data-products/{name}/runs")
    emit_done(started, output, f"run started: {started['run_id']}")


@dist_app.command("runs")
def dist_runs(
    name: ProductArg,
    output: OutputOpt = Output.table,
    url: DistUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The data product's runs, newest first."""
    rows: list[dict[str, Any]] = _dist(url, token).call("GET", f"/data-products/{name}/runs")
    summary = [{**r, "problem count": len(r["problems"])} for r in rows]
    columns: Columns = [
        ("run", "id"), "status", "trigger", ("started", "started_at"), "problem count",
    ]  # fmt: skip
    emit(rows, output, lambda: console.print(rows_table(summary, columns)))


@dist_app.command("show-run")
def dist_show_run(
    run_id: Annotated[str, typer.Argument(help="The run id")],
    output: OutputOpt = Output.table,
    url: DistUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """One run with its per-workspace, per-dataset results."""
    emit_document(_dist(url, token).call("GET", f"/runs/{run_id}"), output)
