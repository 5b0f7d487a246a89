"""What every command shares: its options (--output, --token, --url) and how results are
written. Results go to stdout, as a table for people or as JSON for programs; progress,
notes and errors go to stderr, so `loadbay ... -o json | jq` always gets JSON alone."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from loadbay_cli.client import CliError

# soft_wrap: a long value (an id, a message) is never cut or folded into another line.
console = Console(soft_wrap=True)
err = Console(stderr=True)


class Output(StrEnum):
    table = "table"
    json = "json"


OutputOpt = Annotated[
    Output,
    typer.Option(
        "--output",
        "-o",
        case_sensitive=False,
        help="table (for people) or json (stable keys, ids in full, for programs)",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="Bearer token (default: $LOADBAY_TOKEN or the dev stack's)"),
]
ReloadUrlOpt = Annotated[
    str | None, typer.Option("--url", help="Reload service URL (default: .loadbay/stack.json)")
]
DistUrlOpt = Annotated[
    str | None, typer.Option("--url", help="Distribution service URL (default: stack.json)")
]
LoaderUrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="Loader service URL, the bulk loader's (default: stack.json)"),
]
IngestionUrlOpt = Annotated[
    str | None, typer.Option("--url", help="Ingestion service URL (default: stack.json)")
]
# Table columns: a key, or (header, key); keys may be dotted ("schedule.cron").
Columns = Sequence[str | tuple[str, str]]
DatasetArg = Annotated[str, typer.Argument(help="The dataset as DOMAIN/NAME, e.g. sales/orders")]


def split_dataset(dataset: str) -> tuple[str, str]:
    domain, sep, name = dataset.partition("/")
    if not sep or not domain or not name or "/" in name:
        raise CliError(f"name the dataset as DOMAIN/NAME, not {dataset!r}")
    return domain, name


def print_json(value: Any) -> None:
    """JSON on stdout, as it is: no colours, no wrapping, one document."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def cell(value: Any) -> str:
    """One value as table text: None is empty, lists are comma-joined, dicts are JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def rows_table(rows: Iterable[Mapping[str, Any]], columns: Columns, title: str = "") -> Table:
    """A table of `rows` with `columns`: a key, or (header, key); keys may be dotted."""
    specs = [(c, c) if isinstance(c, str) else c for c in columns]
    table = Table(title=_title(title), title_justify="left")
    for header, _ in specs:
        table.add_column(header, overflow="fold")  # wrapped in a narrow terminal, never cut
    for row in rows:
        table.add_row(*(Text(cell(_dig(row, key))) for _, key in specs))
    return table


def _title(title: str) -> Text | None:
    return Text(title) if title else None  # as it is: names are not markup


def _dig(row: Mapping[str, Any], key: str) -> Any:
    value: Any = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def record_table(record: Mapping[str, Any], title: str = "") -> Table:
    """One object as a two-column table; nested objects' fields are dotted."""
    table = Table(title=_title(title), title_justify="left", show_header=False)
    table.add_column("field", overflow="fold")
    table.add_column("value", overflow="fold")
    for key, value in _flat(record):
        table.add_row(Text(key), Text(cell(value)))
    return table


def _flat(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in record.items():
        if isinstance(value, Mapping) and value:
            items.extend(_flat(value, f"{prefix}{key}."))
        else:
            items.append((f"{prefix}{key}", value))
    return items


def emit(value: Any, output: Output, table: Callable[[], None]) -> None:
    """Write a command's result: `value` as JSON, or whatever `table` prints for people."""
    if output is Output.json:
        print_json(value)
    else:
        table()


def emit_record(value: Mapping[str, Any], output: Output, title: str = "") -> None:
    emit(value, output, lambda: console.print(record_table(value, title)))


def emit_rows(
    rows: Sequence[Mapping[str, Any]],
    output: Output,
    columns: Columns,
    title: str = "",
) -> None:
    emit(rows, output, lambda: console.print(rows_table(rows, columns, title)))


def emit_done(value: Mapping[str, Any], output: Output, sentence: str) -> None:
    """An action's outcome: `value` as JSON, or one sentence for people (printed as it is:
    no markup, as it holds names and messages from the services)."""
    emit(value, output, lambda: console.print(sentence, markup=False, highlight=False))


def emit_document(found: Mapping[str, Any], output: Output, title: str = "") -> None:
    """A document with lists in it: its other fields as one table, then each list of objects
    as a table of its own (a run's results, a data product's workspaces)."""

    def table() -> None:
        console.print(record_table({k: v for k, v in found.items() if not _rows(v)}, title))
        for key, value in found.items():
            if _rows(value):
                console.print(rows_table(value, list(value[0]), key))

    emit(found, output, table)


def _rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)
