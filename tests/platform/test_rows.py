"""Typed rows built from real asyncpg records."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from loadbay_platform.rows import JSON_COLUMN, row, row_or_none, rows


@dataclass(frozen=True, kw_only=True)
class Thing:
    id: int
    doc: dict[str, Any] = field(metadata=JSON_COLUMN)
    tags: list[str]


async def test_a_row_takes_its_fields_decodes_jsonb_and_leaves_other_columns_out(
    warehouse: asyncpg.Connection,
) -> None:
    record = await warehouse.fetchrow(
        """SELECT 7 AS id, '{"a": [1, "x"]}'::jsonb AS doc, ARRAY['p', 'q'] AS tags,
                  'not a field' AS extra"""
    )
    thing = row(Thing, record)
    assert thing == Thing(id=7, doc={"a": [1, "x"]}, tags=["p", "q"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        thing.id = 8  # type: ignore[misc]


async def test_none_and_lists_of_rows(warehouse: asyncpg.Connection) -> None:
    found = await warehouse.fetch(
        """SELECT i AS id, jsonb_build_object('i', i) AS doc, ARRAY[]::text[] AS tags
           FROM generate_series(1, 3) AS i ORDER BY i"""
    )
    assert [t.doc["i"] for t in rows(Thing, found)] == [1, 2, 3]
    assert row_or_none(Thing, None) is None


async def test_a_missing_column_is_an_error_not_a_default(warehouse: asyncpg.Connection) -> None:
    record = await warehouse.fetchrow("SELECT 1 AS id, '{}'::jsonb AS doc")
    with pytest.raises(KeyError):
        row(Thing, record)
