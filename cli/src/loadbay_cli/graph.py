"""`loadbay graph`: the bulk loader, Neptune's API (docs/bulk-loader.md) from the terminal:
start a load, its status and errors, the list, cancel, wait, and the fast reset."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Annotated, Any

import typer

from loadbay_cli.client import Api, CliError, read_stack
from loadbay_cli.output import (
    LoaderUrlOpt,
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
)
from loadbay_cli.waiting import FollowOpt, IntervalOpt, Job, TimeoutOpt, finish, wait_for

graph_app = typer.Typer(
    help="The bulk loader (Neptune's API): load graph data from S3, follow loads, reset.",
    no_args_is_help=True,
)

ACTIVE = frozenset({"LOAD_NOT_STARTED", "LOAD_IN_QUEUE", "LOAD_IN_PROGRESS"})
LoadIdArg = Annotated[str, typer.Argument(help="The load id (as `graph load` printed it)")]
ROLE_ENV = "LOADBAY_LOADER_IAM_ROLE_ARN"


class Format(StrEnum):
    csv = "csv"
    opencypher = "opencypher"
    ntriples = "ntriples"
    nquads = "nquads"
    rdfxml = "rdfxml"
    turtle = "turtle"


class Mode(StrEnum):
    AUTO = "AUTO"
    NEW = "NEW"
    RESUME = "RESUME"


class Parallelism(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    OVERSUBSCRIBE = "OVERSUBSCRIBE"


def _loader(url: str | None, token: str | None) -> Api:
    return Api("loader", url, token)


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("TRUE" if value else "FALSE")


def _region(given: str | None) -> str:
    region = (
        given or os.environ.get("LOADBAY_S3__REGION") or read_stack().get("s3", {}).get("region")
    )
    if not region:
        raise CliError("which region? pass --region (the loader's, e.g. us-east-1)")
    return str(region)


def _parser_configuration(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--parser-config takes KEY=VALUE, e.g. baseUri=http://x/, not {pair!r}")
        found[key] = value
    return found


def _status_of(payload: dict[str, Any]) -> str:
    return str(payload.get("overallStatus", {}).get("status", "?"))


def _feed_counts(payload: dict[str, Any]) -> list[tuple[str, int]]:
    """Neptune's feedCount, [{"LOAD_COMPLETED": 2}, ...], as (status, count) pairs."""
    return [(s, n) for count in payload.get("feedCount", []) for s, n in count.items()]


def _progress(payload: dict[str, Any]) -> str:
    overall = payload.get("overallStatus", {})
    feeds = ", ".join(f"{n} {s}" for s, n in _feed_counts(payload))
    kinds = ("parsingErrors", "datatypeMismatchErrors", "insertErrors")
    errors = sum(int(overall.get(k) or 0) for k in kinds)
    return (
        f"{overall.get('totalRecords', 0)} records, {errors} errors"
        + (f", feeds: {feeds}" if feeds else "")
        + f", {overall.get('totalTimeSpent', 0)} s"
    )


def _show_status(load_id: str, payload: dict[str, Any], output: Output) -> None:
    def table() -> None:
        console.print(record_table(payload.get("overallStatus", {}), f"load {load_id}"))
        feeds = [{"status": s, "feeds": n} for s, n in _feed_counts(payload)]
        if feeds:
            console.print(rows_table(feeds, ["status", "feeds"], "feeds"))
        if payload.get("failedFeeds"):
            columns = ["fullUri", "status", "totalRecords", "parsingErrors", "insertErrors"]
            console.print(rows_table(payload["failedFeeds"], columns, "failed feeds"))
        if "errors" in payload:
            errors = payload["errors"]
            title = f"errors {errors.get('startIndex', 0)}-{errors.get('endIndex', 0)}"
            columns = ["errorCode", "fileName", "recordNum", "errorMessage"]
            console.print(rows_table(errors.get("errorLogs", []), columns, title))

    emit({"loadId": load_id, **payload}, output, table)


def _fetch_status(api: Api, load_id: str, params: dict[str, Any]) -> dict[str, Any]:
    answer = api.call("GET", f"/loader/{load_id}", params=params)
    payload: dict[str, Any] = answer.get("payload", {})
    return payload


def _follow(api: Api, load_id: str, timeout: float, interval: float, output: Output) -> None:
    job = Job(
        what=f"load {load_id}",
        fetch=lambda: _fetch_status(api, load_id, {}),
        state=_status_of,
        active=ACTIVE,
        succeeded="LOAD_COMPLETED",
        progress=_progress,
    )
    _, succeeded = wait_for(job, timeout, interval)
    # The final status with its details and first errors: what a person wants to see next.
    payload = _fetch_status(api, load_id, {"details": "TRUE", "errors": "TRUE"})
    _show_status(load_id, payload, output)
    finish(succeeded)


@graph_app.command("load")
def load(
    source: Annotated[str, typer.Argument(help="s3://bucket/prefix: every object under it")],
    format: Annotated[Format, typer.Option("--format", help="The files' format")],
    iam_role_arn: Annotated[
        str,
        typer.Option("--iam-role-arn", envvar=ROLE_ENV, help="arn:aws:iam::<account>:role/<name>"),
    ],
    region: Annotated[
        str | None, typer.Option(help="The loader's region (default: the dev stack's S3 region)")
    ] = None,
    mode: Annotated[Mode | None, typer.Option(help="AUTO (default), NEW or RESUME")] = None,
    fail_on_error: Annotated[
        bool | None,
        typer.Option("--fail-on-error/--no-fail-on-error", help="Stop at the first error"),
    ] = None,
    parallelism: Annotated[
        Parallelism | None, typer.Option(help="Feeds at once (default HIGH)")
    ] = None,
    parser_config: Annotated[
        list[str] | None,
        typer.Option(
            "--parser-config", help="namedGraphUri=, baseUri= or allowEmptyStrings=; repeatable"
        ),
    ] = None,
    update_single_cardinality_properties: Annotated[
        bool | None,
        typer.Option(
            "--update-single-cardinality-properties/--no-update-single-cardinality-properties",
            help="A new value replaces a single-cardinality property",
        ),
    ] = None,
    queue_request: Annotated[
        bool | None,
        typer.Option("--queue-request/--no-queue-request", help="Wait in the queue if busy"),
    ] = None,
    dependency: Annotated[
        list[str] | None,
        typer.Option("--dependency", help="A load id that must complete first; repeatable"),
    ] = None,
    user_provided_edge_ids: Annotated[
        bool | None,
        typer.Option(
            "--user-provided-edge-ids/--no-user-provided-edge-ids",
            help="openCypher relationship files carry :ID",
        ),
    ] = None,
    edge_only_load: Annotated[
        bool | None,
        typer.Option("--edge-only-load/--no-edge-only-load", help="Feeds in listing order"),
    ] = None,
    follow: FollowOpt = False,
    timeout: TimeoutOpt = 3600.0,
    interval: IntervalOpt = 1.0,
    output: OutputOpt = Output.table,
    url: LoaderUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Start a bulk load (Neptune's StartLoaderJob); options left out take Neptune's defaults."""
    fields: dict[str, Any] = {
        "source": source,
        "format": format.value,
        "iamRoleArn": iam_role_arn,
        "region": _region(region),
        "mode": mode.value if mode else None,
        "failOnError": _flag(fail_on_error),
        "parallelism": parallelism.value if parallelism else None,
        "parserConfiguration": _parser_configuration(parser_config or []) or None,
        "updateSingleCardinalityProperties": _flag(update_single_cardinality_properties),
        "queueRequest": _flag(queue_request),
        "dependencies": dependency or None,
        "userProvidedEdgeIds": _flag(user_provided_edge_ids),
        "edgeOnlyLoad": _flag(edge_only_load),
    }
    api = _loader(url, token)
    body = {k: v for k, v in fields.items() if v is not None}
    load_id = str(api.call("POST", "/loader", json=body)["payload"]["loadId"])
    if follow:
        err.print(f"load started: {load_id}", markup=False, highlight=False)
        _follow(api, load_id, timeout, interval, output)
        return
    emit_done({"loadId": load_id}, output, f"load started: {load_id}")


@graph_app.command("status")
def status(
    load_id: LoadIdArg,
    details: Annotated[bool, typer.Option(help="Add the failed feeds")] = False,
    errors: Annotated[bool, typer.Option(help="Add the error logs, a page at a time")] = False,
    page: Annotated[int, typer.Option(min=1, help="The page of errors")] = 1,
    errors_per_page: Annotated[int, typer.Option(min=1, help="Errors on a page")] = 10,
    output: OutputOpt = Output.table,
    url: LoaderUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """A load's status (Neptune's Get-Status), with its failed feeds and errors if asked."""
    params: dict[str, Any] = {"details": _flag(details), "errors": _flag(errors)}
    if errors:
        params.update(page=page, errorsPerPage=errors_per_page)
    _show_status(load_id, _fetch_status(_loader(url, token), load_id, params), output)


@graph_app.command("list")
def list_loads(
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many, newest first")] = 100,
    include_queued: Annotated[
        bool, typer.Option("--include-queued/--no-include-queued", help="Queued loads first")
    ] = True,
    output: OutputOpt = Output.table,
    url: LoaderUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Load ids, newest first (the graph's users see every load, others their own)."""
    params = {"limit": limit, "includeQueuedLoads": _flag(include_queued)}
    ids = _loader(url, token).call("GET", "/loader", params=params)["payload"]["loadIds"]
    emit_rows([{"loadId": i} for i in ids], output, ["loadId"])


@graph_app.command("cancel")
def cancel(
    load_id: LoadIdArg,
    output: OutputOpt = Output.table,
    url: LoaderUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Cancel a queued or running load you started (LOAD_CANCELLED_BY_USER)."""
    _loader(url, token).call("DELETE", f"/loader/{load_id}")
    emit_done({"loadId": load_id, "cancelled": True}, output, f"cancelled load {load_id}")


@graph_app.command("wait")
def wait(
    load_id: LoadIdArg,
    timeout: TimeoutOpt = 3600.0,
    interval: IntervalOpt = 1.0,
    output: OutputOpt = Output.table,
    url: LoaderUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Wait until the load ends, progress on stderr; then its status with details and errors.
    Exits 0 for LOAD_COMPLETED, 3 for any other end, 1 at the timeout."""
    _follow(_loader(url, token), load_id, timeout, interval, output)


@graph_app.command("reset")
def reset(
    yes: Annotated[
        bool, typer.Option("--yes", help="Yes, delete every vertex, edge and statement")
    ] = False,
    output: OutputOpt = Output.table,
    url: LoaderUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Empty the whole graph (Neptune's fast reset: initiateDatabaseReset, then
    performDatabaseReset with its token). The loads' history stays."""
    if not yes:
        raise CliError(
            "this deletes every vertex, edge and RDF statement of the graph: pass --yes to do it"
        )
    api = _loader(url, token)
    issued = api.call("POST", "/system", json={"action": "initiateDatabaseReset"})
    reset_token = issued["payload"]["token"]
    err.print(f"reset token issued: {reset_token}", markup=False, highlight=False)
    api.call("POST", "/system", json={"action": "performDatabaseReset", "token": reset_token})
    emit_done({"reset": True, "token": reset_token}, output, "the graph is empty")
