"""`loadbay connections`: S3 connections of the ingestion service (docs/ingestion.md): create,
list, show, test, versions with upgrade and downgrade, delete. Bindings, schedules and runs
of the datasets bound to them are in ingestion.py, in the same command group."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

from loadbay_cli.client import Api, CliError
from loadbay_cli.output import (
    Columns,
    IngestionUrlOpt,
    Output,
    OutputOpt,
    TokenOpt,
    console,
    emit,
    emit_document,
    emit_done,
    record_table,
    rows_table,
)
from loadbay_cli.waiting import EXIT_JOB_FAILED

connections_app = typer.Typer(
    help="S3 connections: bring files from a remote bucket into datasets, now or on a schedule.",
    no_args_is_help=True,
)
ConnectionArg = Annotated[str, typer.Argument(help="The connection's name")]
SECRET_ENV = "LOADBAY_CONNECTION_SECRET_ACCESS_KEY"
CONNECTION_COLUMNS: Columns = [
    "name", "bucket", "region", "version", ("access", "access_type"), ("owner", "owner_id"),
    ("endpoint", "endpoint_url"),
]  # fmt: skip


class AccessType(StrEnum):
    access_keys = "access_keys"
    bucket_policy = "bucket_policy"


class Version(StrEnum):
    v16 = "1.6"
    v17 = "1.7"
    v18 = "1.8"


def ingestion_api(url: str | None, token: str | None) -> Api:
    return Api("ingestion", url, token)


def _secret(given: str | None) -> str:
    if given:
        return given
    if sys.stdin.isatty():
        return str(typer.prompt("secret access key", hide_input=True))
    raise CliError(f"an access_keys connection needs its secret: set {SECRET_ENV}")


@connections_app.command("create")
def create(
    name: ConnectionArg,
    bucket: Annotated[str, typer.Option(help="The remote bucket")],
    region: Annotated[str, typer.Option(help="The bucket's AWS region, e.g. eu-west-1")],
    access_type: Annotated[
        AccessType, typer.Option(help="access_keys, or bucket_policy (loadbay's own principal)")
    ] = AccessType.access_keys,
    access_key_id: Annotated[
        str | None, typer.Option(help="For access_keys: the key id (stored encrypted)")
    ] = None,
    secret_access_key: Annotated[
        str | None,
        typer.Option(
            envvar=SECRET_ENV,
            help="For access_keys: the secret; better from the variable, or typed when asked",
        ),
    ] = None,
    version: Annotated[Version, typer.Option(help="What runs do: 1.6, 1.7 or 1.8")] = Version.v18,
    endpoint_url: Annotated[
        str | None, typer.Option(help="An S3-compatible store (MinIO); default AWS S3")
    ] = None,
    kms_key_arn: Annotated[str | None, typer.Option(help="The bucket's KMS key")] = None,
    description: Annotated[str, typer.Option(help="What it is for")] = "",
    user: Annotated[
        list[str] | None, typer.Option("--user", help="An authorized user id; repeatable")
    ] = None,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create an S3 connection. Access keys are stored encrypted and never shown again."""
    body: dict[str, Any] = {
        "name": name, "bucket": bucket, "region": region, "access_type": access_type.value,
        "version": version.value, "description": description, "authorized_users": user or [],
    }  # fmt: skip
    if endpoint_url:
        body["endpoint_url"] = endpoint_url
    if kms_key_arn:
        body["kms_key_arn"] = kms_key_arn
    if access_type is AccessType.access_keys:
        if not access_key_id:
            raise CliError("an access_keys connection needs --access-key-id")
        body["access_key_id"] = access_key_id
        body["secret_access_key"] = _secret(secret_access_key)
    made = ingestion_api(url, token).call("POST", "/connections", json=body)
    emit_done(made, output, f"created connection {name} (s3://{bucket}, version {made['version']})")


@connections_app.command("list")
def list_connections(
    output: OutputOpt = Output.table, url: IngestionUrlOpt = None, token: TokenOpt = None
) -> None:
    """The connections you own or are authorized on."""
    rows = ingestion_api(url, token).call("GET", "/connections")
    emit(rows, output, lambda: console.print(rows_table(rows, CONNECTION_COLUMNS)))


@connections_app.command("show")
def show(
    name: ConnectionArg,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """A connection, its version history and the datasets bound to it."""
    found = ingestion_api(url, token).call("GET", f"/connections/{name}")
    emit_document(found, output, f"connection {name}")


@connections_app.command("test")
def test(
    name: ConnectionArg,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Whether loadbay can list the bucket and read from it, and if not, why.
    Exits 3 when it cannot."""
    result: dict[str, Any] = ingestion_api(url, token).call("POST", f"/connections/{name}/test")
    sentence = (
        f"connection {name}: s3://{result['bucket']} can be listed and read"
        if result["ok"]
        else f"connection {name}: s3://{result['bucket']} fails: {result.get('reason')}"
    )
    emit_done(result, output, sentence)
    if not result["ok"]:
        raise typer.Exit(EXIT_JOB_FAILED)


def _versions(found: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "version", "upgrade_to", "downgrade_to", "version_history")
    return {k: found.get(k) for k in keys}


def _show_versions(found: dict[str, Any], output: Output) -> None:
    view = _versions(found)

    def table() -> None:
        summary = {k: v for k, v in view.items() if k != "version_history"}
        console.print(record_table(summary, f"connection {found['name']}"))
        columns: Columns = ["action", ("from", "from_version"), ("to", "to_version"),
                   ("by", "changed_by"), ("at", "changed_at")]  # fmt: skip
        console.print(rows_table(view["version_history"] or [], columns, "history"))

    emit(view, output, table)


@connections_app.command("versions")
def versions(
    name: ConnectionArg,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The connection's version, where it may go (upgrade, downgrade) and its history."""
    _show_versions(ingestion_api(url, token).call("GET", f"/connections/{name}"), output)


@connections_app.command("upgrade")
def upgrade(
    name: ConnectionArg,
    to: Annotated[
        Version | None, typer.Option("--to", help="The next version (default: the next one)")
    ] = None,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Upgrade to the next version (1.6 -> 1.7 -> 1.8)."""
    api = ingestion_api(url, token)
    target = to.value if to else api.call("GET", f"/connections/{name}")["upgrade_to"]
    if target is None:
        raise CliError(f"connection {name} is at the latest version already")
    found = api.call("POST", f"/connections/{name}/upgrade", json={"version": target})
    _show_versions(found, output)


@connections_app.command("downgrade")
def downgrade(
    name: ConnectionArg,
    to: Annotated[Version, typer.Option("--to", help="A version it was upgraded from")],
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Downgrade back to a version the connection was upgraded from."""
    found = ingestion_api(url, token).call(
        "POST", f"/connections/{name}/downgrade", json={"version": to.value}
    )
    _show_versions(found, output)


@connections_app.command("delete")
def delete(
    name: ConnectionArg,
    output: OutputOpt = Output.table,
    url: IngestionUrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Delete a connection you own (unbind its datasets first)."""
    ingestion_api(url, token).call("DELETE", f"/connections/{name}")
    emit_done({"name": name, "deleted": True}, output, f"deleted connection {name}")
