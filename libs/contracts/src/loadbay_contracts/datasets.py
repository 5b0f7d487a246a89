"""The declared shape of a tabular dataset, as services pass it to the loader."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# What SQL may name (a schema, a table, a column; quoted by loadbay_platform.db.quote_ident):
# letters, digits and _, not starting with a digit, at most 63 characters (PostgreSQL's limit).
SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# What a user names a domain, a dataset or a column: an SQL name in lowercase that starts with
# a letter, so it reads the same quoted or not (`SELECT * FROM sales.orders`).
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ColumnType = Literal[
    "text", "integer", "bigint", "numeric", "boolean", "date", "timestamp", "timestamptz"
]
FileType = Literal["csv"]


class ColumnSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=IDENTIFIER.pattern)
    type: ColumnType
    nullable: bool = True


class CsvOptionsSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote: str = Field(default='"', min_length=1, max_length=1)
    escape: str | None = Field(default=None, min_length=1, max_length=1)
    header: Literal[True] = True


class DatasetSpec(BaseModel):
    """What the loader needs to know to load files into a dataset's warehouse table."""

    model_config = ConfigDict(frozen=True)

    dataset_id: str
    domain: str = Field(pattern=IDENTIFIER.pattern)
    name: str = Field(pattern=IDENTIFIER.pattern)
    file_type: FileType = "csv"
    columns: tuple[ColumnSpec, ...] = Field(min_length=1)
    csv: CsvOptionsSpec = CsvOptionsSpec()

    @property
    def warehouse_schema(self) -> str:
        """Each domain is a PostgreSQL schema of the warehouse; the dataset is a table in it."""
        return self.domain

    @property
    def table(self) -> str:
        return self.name
