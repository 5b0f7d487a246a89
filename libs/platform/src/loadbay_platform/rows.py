"""Typed rows: a repository turns each asyncpg record into a small frozen dataclass, so domain
code reads attributes (checked by mypy) instead of indexing records by column name.

A `jsonb` column comes from asyncpg as text: declare its field with
`field(metadata=JSON_COLUMN)` and the row holds the decoded value.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    Row = TypeVar("Row", bound=DataclassInstance)
else:
    Row = TypeVar("Row")

JSON_COLUMN: Mapping[str, bool] = MappingProxyType({"loadbay_json": True})


def row(cls: type[Row], record: Any) -> Row:
    """The record as `cls`: one field per column of that name (other columns are left out)."""
    values = {}
    for f in dataclasses.fields(cls):
        value = record[f.name]
        if f.metadata.get("loadbay_json") and isinstance(value, str):
            value = json.loads(value)
        values[f.name] = value
    return cls(**values)


def row_or_none(cls: type[Row], record: Any | None) -> Row | None:
    return None if record is None else row(cls, record)


def rows(cls: type[Row], records: Iterable[Any]) -> list[Row]:
    return [row(cls, r) for r in records]
