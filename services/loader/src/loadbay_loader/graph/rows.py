"""The bulk loader's rows, as loads_store returns them: a load, its feeds, its logged errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loadbay_loader.graph.feeds import Format
from loadbay_platform.rows import JSON_COLUMN


@dataclass(frozen=True, kw_only=True)
class Counts:
    """What Neptune's status reports for a load and for each of its feeds."""

    status: str
    start_time: datetime | None
    total_time_spent: float
    total_records: int
    total_duplicates: int
    parsing_errors: int
    datatype_mismatch_errors: int
    insert_errors: int


@dataclass(frozen=True, kw_only=True)
class GraphLoad(Counts):
    id: str
    source: str
    bucket: str
    prefix: str
    format: Format  # checked when the load was requested
    mode: str
    fail_on_error: bool
    parallelism: str
    parser_configuration: dict[str, Any] = field(metadata=JSON_COLUMN)
    update_single_cardinality: bool
    user_provided_edge_ids: bool | None
    queue_request: bool
    edge_only_load: bool
    dependencies: list[str]
    region: str
    iam_role_arn: str
    requested_by: str | None
    requested_by_email: str | None
    run_number: int
    retry_number: int
    cancel_requested: bool
    finished_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class Feed(Counts):
    """One file (or, for RDF and openCypher, one file of a kind) of a load."""

    load_id: str
    uri: str
    kind: str
    position: int


@dataclass(frozen=True, kw_only=True)
class LoadError:
    idx: int
    error_code: str
    error_message: str
    file_name: str
    record_num: int


@dataclass(frozen=True, kw_only=True)
class Requester:
    requested_by: str | None  # None: the API ran without authentication


@dataclass(frozen=True, kw_only=True)
class CrashLooping:
    """A load left running by a dead process once too often, with the feed it was on."""

    id: str
    run_number: int
    uri: str | None
