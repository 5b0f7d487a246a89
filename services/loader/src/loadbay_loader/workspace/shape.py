"""What a workspace load's dataset means for its source file: the columns it declares, the key
rows are matched on (connection point, else grain, else all attributes), and the header
checks a file must pass (documented prefixes, every declared column present).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loadbay_contracts import WorkspaceLoadRequested
from loadbay_contracts.datasets import SQL_NAME, ColumnType
from loadbay_loader.streaming import limits
from loadbay_loader.warehouse import tabular
from loadbay_loader.warehouse.copy_errors import RowError
from loadbay_loader.workspace.staging_store import CLIENT_ID, DELETED

DATASET_PREFIXES = ("cp__", "a__", "l__", "f__", "r__", "d__")
ATTRIBUTE_PREFIXES = ("a__", "l__", "r__", "d__")
#: System columns a file may have, and their staging types. x__timestamp is the data
#: warehouse variant's cursor: object storage takes the timestamp from the file name.
SYSTEM_COLUMNS: dict[str, ColumnType] = {
    CLIENT_ID: "text",
    DELETED: "boolean",
    "x__timestamp": "text",
}


class InvalidRequest(Exception):
    """The request contradicts itself (e.g. a grain column the dataset does not have)."""


@dataclass(frozen=True)
class Shape:
    """What the request's dataset means for loading: its columns and how rows are matched."""

    columns: tuple[str, ...]
    types: dict[str, ColumnType]
    key: tuple[str, ...]  # connection point, else grain, else all attributes
    keyed: bool  # connection point or grain: never empty, unique in the workspace's table

    @classmethod
    def of(cls, request: WorkspaceLoadRequested) -> Shape:
        names = [c.name for c in request.columns]
        if len(set(names)) != len(names):
            raise InvalidRequest(f"dataset {request.dataset}: a column is declared twice")
        points = [n for n in names if n.startswith("cp__")]
        if len(points) > 1:
            raise InvalidRequest(
                f"dataset {request.dataset}: more than one connection point ({', '.join(points)})"
            )
        bad = [g for g in request.grain if g not in names or not g.startswith(ATTRIBUTE_PREFIXES)]
        if bad:
            raise InvalidRequest(
                f"dataset {request.dataset}: grain column(s) {', '.join(bad)} are not attributes"
                " of the dataset"
            )
        types = {c.name: c.type for c in request.columns}
        if points:
            return cls(tuple(names), types, tuple(points), keyed=True)
        if request.grain:
            return cls(tuple(names), types, tuple(request.grain), keyed=True)
        attributes = tuple(n for n in names if n.startswith(ATTRIBUTE_PREFIXES))
        return cls(tuple(names), types, attributes, keyed=False)


def header_columns(
    names: Sequence[str], shape: Shape, nullable: dict[str, bool], key: str
) -> tuple[list[tabular.Column], list[str]]:
    """The staging columns the header names, in its order, and the ones not in the dataset."""
    most = limits.current().max_columns
    if len(names) > most:
        raise RowError(
            key,
            f"the header has {len(names)} columns; at most {most} are allowed"
            f" (LOADBAY_LOADER_MAX_COLUMNS; PostgreSQL tables take {limits.POSTGRES_MAX_COLUMNS})",
            line=1,
        )
    lowered = list(dict.fromkeys(n.lower() for n in names))  # repeats: copy_csv names them
    unprefixed = [
        n for n in lowered if n not in SYSTEM_COLUMNS and not n.startswith(DATASET_PREFIXES)
    ]
    if unprefixed:
        raise RowError(
            key,
            f"column {', '.join(repr(n) for n in unprefixed)} has no documented prefix"
            f" ({', '.join(DATASET_PREFIXES)}) and is not one of {', '.join(SYSTEM_COLUMNS)}",
            line=1,
            column=unprefixed[0] if len(unprefixed) == 1 else None,
        )
    missing = [c for c in shape.columns if c not in lowered]
    if missing:
        raise RowError(
            key,
            f"the header has no column {', '.join(repr(c) for c in missing)}, which the"
            " dataset declares",
            line=1,
            column=missing[0] if len(missing) == 1 else None,
        )
    extras = [n for n in lowered if n not in shape.types and n not in SYSTEM_COLUMNS]
    for name in extras:
        if not SQL_NAME.match(name):
            raise RowError(key, f"column name {name!r} is not a plain identifier", line=1)
    columns = [
        tabular.Column(n, shape.types[n], nullable[n])
        if n in shape.types
        else tabular.Column(n, SYSTEM_COLUMNS.get(n, "text"))
        for n in lowered
    ]
    return columns, extras
