"""Hostile files against the loader on real servers: decompression bombs of every format,
lines without an end, headers wider than PostgreSQL allows, a cancel in the middle of a file,
and a load that keeps taking the loader down.

The bulk loads run in the session's platform, whose loader runs in this process: the tests
watch this process's resident memory while the loader chews on a bomb and assert it grows by
less than RSS_BOUND (before these limits, a 1 MiB .gz took the loader past 3 GiB). Most bombs
expand to 1 GiB but meet lowered limits, so they fail in a second; the `default_limits` ones
meet the limits a deployment gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
from botocore.exceptions import ClientError

from loadbay_contracts import WorkspaceColumn, WorkspaceLoadRequested, WorkspaceTarget
from loadbay_loader.graph import load_runner
from loadbay_loader.settings import LoaderSettings
from loadbay_loader.streaming import limits
from loadbay_loader.streaming.limits import InputLimits
from loadbay_loader.warehouse import tabular
from loadbay_loader.warehouse.copy_errors import RowError
from loadbay_loader.workspace import loads as workspace_loads
from loadbay_platform.s3 import s3_client
from loadbay_platform.settings import PlatformSettings
from tests.conftest import Platform, User, eventually
from tests.loader.test_neptune_api import (
    ROLE,
    SOURCE_BUCKET,
    TERMINAL,
    GraphLock,
    finished,
    request_body,
    start,
    status,
)

MiB = 1 << 20
GiB = 1 << 30
RSS_BOUND = 128 * MiB  # growth of the loader's process while it reads one bomb (seen: under 30)
LOW = InputLimits(
    max_decompressed_bytes=4 * MiB,
    max_compression_ratio=1_000_000,  # the size cap is the one these bombs meet
    ratio_grace_bytes=MiB,
    max_record_bytes=MiB,
    max_columns=1000,
)


# --------------------------------------------------------------------------- helpers


class RssPeak:
    """The peak growth of this process's resident memory while the block runs, sampled by a
    thread (so it sees the peak even while the event loop is busy)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._done = threading.Event()
        self.base = self.peak = 0

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> RssPeak:
        self.base = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        print(f"RSS grew by {self.growth / MiB:.0f} MiB")  # shown with pytest -s

    @property
    def growth(self) -> int:
        return self.peak - self.base


def bomb(head: bytes, unit: bytes, expanded: int, tail: bytes = b"") -> bytes:
    """`head`, then `unit` repeated to `expanded` bytes, then `tail`, gzipped: one compressed
    block repeated as concatenated gzip members (which decompressors must read on), so making
    a 1 GiB bomb takes milliseconds and the test never holds its expansion."""
    block = unit * (8 * MiB // len(unit))
    member = gzip.compress(block, 9)
    return gzip.compress(head) + member * (expanded // len(block)) + gzip.compress(tail)


@pytest.fixture(autouse=True)
def source_bucket(s3: Any) -> str:
    with contextlib.suppress(ClientError):  # made by another test of the session already
        s3.create_bucket(Bucket=SOURCE_BUCKET)
    return SOURCE_BUCKET


@pytest.fixture
async def neptune(platform: Platform, ann: User) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(  # ann is one of the graph's users
        base_url=platform.urls["loader"], headers=ann.headers, timeout=30
    ) as client:
        yield client


@pytest.fixture
def low_limits(monkeypatch: pytest.MonkeyPatch) -> InputLimits:
    """Lower limits for the loader in this process (restored after the test)."""
    monkeypatch.setattr(limits, "_current", LOW)
    return LOW


@pytest.fixture
def default_limits(monkeypatch: pytest.MonkeyPatch) -> InputLimits:
    defaults = LoaderSettings().input_limits()
    monkeypatch.setattr(limits, "_current", defaults)
    return defaults


async def load_bomb(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, fmt: str, name: str, body: bytes
) -> tuple[dict[str, Any], list[dict[str, Any]], str, RssPeak]:
    prefix = f"hostile/{uuid.uuid4().hex[:8]}/"
    s3.put_object(Bucket=SOURCE_BUCKET, Key=prefix + name, Body=body)
    with RssPeak() as rss:
        load_id = await start(neptune, request_body(platform, prefix, fmt))
        payload = await finished(neptune, load_id, errors="TRUE", details="TRUE")
    return payload["overallStatus"], payload["errors"]["errorLogs"], prefix + name, rss


# --------------------------------------------------------------------------- bulk-load bombs

PREFIX_TTL = b"@prefix e: <http://example.org/> .\n"
RDF_XML_HEAD = (
    b'<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
    b' xmlns:e="http://example.org/">\n'
)
BOMBS = {
    # format, file, head, repeated unit: 1 GiB of valid statements each
    "opencypher": ("nodes.csv.gz", b":ID,name:String\n", b"n1,a\n"),
    "ntriples": ("data.nt.gz", b"", b'<http://example.org/s> <http://example.org/p> "o" .\n'),
    "turtle": ("data.ttl.gz", PREFIX_TTL, b'e:s e:p "o" .\n'),
    "rdfxml": (
        "data.rdf.gz",
        RDF_XML_HEAD,
        b'<rdf:Description rdf:about="http://example.org/s"><e:p>o</e:p></rdf:Description>\n',
    ),
}


@pytest.mark.parametrize("fmt", list(BOMBS))
async def test_a_gzip_bomb_fails_its_file_at_the_decompression_cap(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, low_limits: InputLimits, fmt: str
) -> None:
    name, head, unit = BOMBS[fmt]
    body = bomb(head, unit, GiB)
    assert len(body) < 4 * MiB  # for 1 GiB of statements
    overall, errors, key, rss = await load_bomb(platform, neptune, s3, fmt, name, body)
    assert overall["status"] == "LOAD_FAILED"
    assert [(e["errorCode"], e["fileName"]) for e in errors] == [
        ("PARSING_ERROR", f"s3://{SOURCE_BUCKET}/{key}")
    ]
    message = errors[0]["errorMessage"]
    assert f"larger than the limit of {4 * MiB} bytes" in message, message
    assert "LOADBAY_LOADER_MAX_DECOMPRESSED_BYTES" in message and key in message
    assert rss.growth < RSS_BOUND, f"RSS grew by {rss.growth / MiB:.0f} MiB"


async def test_a_gremlin_csv_without_line_breaks_fails_at_the_record_limit(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        limits, "_current", InputLimits(max_compression_ratio=10**9, max_record_bytes=MiB)
    )
    body = bomb(b"~id,name:String\nv1,ok\n", b"a", GiB)
    overall, errors, _, rss = await load_bomb(platform, neptune, s3, "csv", "v.csv.gz", body)
    assert overall["status"] == "LOAD_FAILED"
    assert [(e["errorCode"], e["recordNum"]) for e in errors] == [("PARSING_ERROR", 2)]
    assert f"longer than {MiB} bytes" in errors[0]["errorMessage"]
    assert "LOADBAY_LOADER_MAX_RECORD_BYTES" in errors[0]["errorMessage"]
    assert overall["totalRecords"] > 0  # the record before the endless one loaded
    assert rss.growth < RSS_BOUND, f"RSS grew by {rss.growth / MiB:.0f} MiB"


@pytest.mark.parametrize(
    ("fmt", "name", "head", "unit"),
    [
        ("csv", "v.csv.gz", b"~id,name:String\n", b"a"),  # no line break at all
        ("turtle", "data.ttl.gz", PREFIX_TTL + b"#", b"a"),  # a comment that never ends
    ],
)
async def test_real_gzip_bombs_fail_with_the_default_limits(
    platform: Platform,
    neptune: httpx.AsyncClient,
    s3: Any,
    default_limits: InputLimits,
    fmt: str,
    name: str,
    head: bytes,
    unit: bytes,
) -> None:
    body = bomb(head, unit, GiB)  # 1 MiB that expands to 1 GiB, as in the report
    started = time.monotonic()
    overall, errors, _, rss = await load_bomb(platform, neptune, s3, fmt, name, body)
    assert overall["status"] == "LOAD_FAILED"
    assert [e["errorCode"] for e in errors] == ["PARSING_ERROR"]
    # The ratio or the record limit, or (for the Turtle comment) the parser's 16 MiB token limit
    message = errors[0]["errorMessage"]
    assert "LOADBAY_LOADER_MAX_" in message or "longer than the parser's limit" in message
    assert rss.growth < RSS_BOUND, f"RSS grew by {rss.growth / MiB:.0f} MiB"
    assert time.monotonic() - started < 30


async def test_a_corrupt_gzip_fails_its_file(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any
) -> None:
    body = gzip.compress(b'<http://e/s> <http://e/p> "o" .\n' * 1000)[:-20] + b"\x00" * 20
    overall, errors, key, _ = await load_bomb(platform, neptune, s3, "ntriples", "x.nt.gz", body)
    assert overall["status"] == "LOAD_FAILED"
    assert [e["errorCode"] for e in errors] == ["PARSING_ERROR"]
    assert "not a valid gzip file" in errors[0]["errorMessage"] and key in errors[0]["errorMessage"]


# --------------------------------------------------------------------------- columns


async def test_ten_thousand_columns_are_a_parsing_error_naming_the_file(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any
) -> None:
    header = "~id," + ",".join(f"p{i}:Int" for i in range(9_999))
    body = (header + "\nv1," + ",".join("1" for _ in range(9_999)) + "\n").encode()
    overall, errors, key, _ = await load_bomb(platform, neptune, s3, "csv", "wide.csv", body)
    assert overall["status"] == "LOAD_FAILED"
    assert [(e["errorCode"], e["recordNum"]) for e in errors] == [("PARSING_ERROR", 0)]
    message = errors[0]["errorMessage"]
    assert "10000 columns" in message and "at most 1000" in message and key in message


async def test_a_header_at_the_column_limit_loads(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any
) -> None:
    tag = uuid.uuid4().hex[:8]
    width = LoaderSettings().max_columns
    header = "~id," + ",".join(f"p{i}:Int" for i in range(width - 1))
    body = (header + f"\n{tag}-wide," + ",".join(str(i) for i in range(width - 1)) + "\n").encode()
    overall, errors, _, _ = await load_bomb(platform, neptune, s3, "csv", "wide.csv", body)
    assert (overall["status"], errors) == ("LOAD_COMPLETED", [])
    assert overall["totalRecords"] == width  # a label and width - 1 property values


# --------------------------------------------------------------------------- cancel


async def test_a_cancel_stops_a_load_in_the_middle_of_a_file_within_seconds(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 GiB of Turtle the limits let through: it would take many minutes to load.
    monkeypatch.setattr(limits, "_current", InputLimits(max_compression_ratio=10**9))
    prefix = f"hostile/{uuid.uuid4().hex[:8]}/"
    s3.put_object(
        Bucket=SOURCE_BUCKET,
        Key=prefix + "big.ttl.gz",
        Body=bomb(PREFIX_TTL, b'e:s e:p "o" .\n', GiB),
    )
    with RssPeak() as rss:
        load_id = await start(neptune, request_body(platform, prefix, "turtle"))

        async def running() -> bool:
            state = await status(neptune, load_id)
            return state["overallStatus"]["status"] == "LOAD_IN_PROGRESS"

        await eventually(running, within=30)
        await asyncio.sleep(2)  # well into the file
        cancelled_at = time.monotonic()
        assert (await neptune.delete(f"/loader/{load_id}")).status_code == 200
        payload = await finished(neptune, load_id)
    assert payload["overallStatus"]["status"] == "LOAD_CANCELLED_BY_USER"
    assert time.monotonic() - cancelled_at < 5
    assert rss.growth < RSS_BOUND, f"RSS grew by {rss.growth / MiB:.0f} MiB"


async def test_a_cancel_interrupts_a_load_stuck_in_the_database(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, stack_db: str
) -> None:
    prefix = f"hostile/{uuid.uuid4().hex[:8]}/"
    s3.put_object(Bucket=SOURCE_BUCKET, Key=prefix + "v.csv", Body=b"~id\nv-stuck\n")
    async with GraphLock(stack_db):  # the load's merge waits on this lock for as long as it is held
        load_id = await start(neptune, request_body(platform, prefix, "csv"))

        async def running() -> bool:
            state = await status(neptune, load_id)
            return state["overallStatus"]["status"] == "LOAD_IN_PROGRESS"

        await eventually(running, within=30)
        await asyncio.sleep(1)
        cancelled_at = time.monotonic()
        assert (await neptune.delete(f"/loader/{load_id}")).status_code == 200
        payload = await finished(neptune, load_id, details="TRUE")
        assert time.monotonic() - cancelled_at < 6  # while the lock is still held
    assert payload["overallStatus"]["status"] == "LOAD_CANCELLED_BY_USER"
    assert [f["status"] for f in payload["failedFeeds"]] == ["LOAD_CANCELLED_BY_USER"]


# --------------------------------------------------------------------------- crash loop


async def test_a_load_that_keeps_stopping_the_loader_is_failed_not_resumed(
    pool: asyncpg.Pool, pg_url: str, settings: PlatformSettings, s3: Any
) -> None:
    """Three times the loader dies while it runs the load (here: its worker is cancelled while
    the load waits on a lock, which leaves what a killed process leaves); the next start fails
    the load instead of running it a fourth time, and tells its requester."""
    prefix = f"hostile/{uuid.uuid4().hex[:8]}/"
    s3.put_object(Bucket=SOURCE_BUCKET, Key=prefix + "v.csv", Body=b"~id\nv-crash\n")
    load_id = str(uuid.uuid4())
    await pool.execute(
        """INSERT INTO graph_loads (id, source, bucket, prefix, format, mode, fail_on_error,
            parallelism, parser_configuration, update_single_cardinality, queue_request,
            edge_only_load, dependencies, region, iam_role_arn, status, requested_by,
            requested_by_email)
           VALUES ($1, $2, $3, $4, 'csv', 'NEW', true, 'HIGH', '{}', false, false, false, '{}',
            $5, $6, 'LOAD_NOT_STARTED', 'alice', 'alice@example.com')""",
        load_id, f"s3://{SOURCE_BUCKET}/{prefix}", SOURCE_BUCKET, prefix,
        settings.s3.region, ROLE,
    )  # fmt: skip
    loader_settings = LoaderSettings(max_restarts=3)

    async def load_row() -> asyncpg.Record:
        row = await pool.fetchrow("SELECT * FROM graph_loads WHERE id = $1", load_id)
        assert row is not None
        return row

    async with s3_client(settings.s3) as client, GraphLock(pg_url):
        for run in (1, 2, 3):
            worker = asyncio.create_task(
                load_runner.Worker(pool, client, loader_settings, poll_interval_s=0.1).run()
            )

            async def running(run: int = run) -> bool:
                row = await load_row()
                return bool(row["status"] == "LOAD_IN_PROGRESS" and row["run_number"] == run)

            await eventually(running, within=30)
            await asyncio.sleep(0.5)  # in the middle of its feed
            worker.cancel()  # the process dies: the load is left "in progress"
            await asyncio.gather(worker, return_exceptions=True)
            assert (await load_row())["status"] == "LOAD_IN_PROGRESS"
        worker = asyncio.create_task(
            load_runner.Worker(pool, client, loader_settings, poll_interval_s=0.1).run()
        )
        try:

            async def failed() -> bool:
                return bool((await load_row())["status"] in TERMINAL)

            await eventually(failed, within=30)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    row = await load_row()
    assert (row["status"], row["run_number"]) == ("LOAD_FAILED", 3)
    error = await pool.fetchrow("SELECT * FROM graph_load_errors WHERE load_id = $1", load_id)
    assert error is not None
    assert error["file_name"] == f"s3://{SOURCE_BUCKET}/{prefix}v.csv"
    assert "stopped 3 times while running this load" in error["error_message"]
    feeds = await pool.fetch("SELECT status FROM graph_load_feeds WHERE load_id = $1", load_id)
    assert [f["status"] for f in feeds] == ["LOAD_FAILED"]
    finished_event = await pool.fetchval(
        "SELECT envelope->'data'->>'status' FROM outbox WHERE envelope->'data'->>'load_id' = $1",
        load_id,
    )
    assert finished_event == "LOAD_FAILED"


# --------------------------------------------------------------------------- reload, workspaces


async def endless_line(header: bytes, total: int) -> AsyncIterator[bytes]:
    """A CSV whose second line never ends, made as it is read."""
    yield header
    block = b"x" * MiB
    for _ in range(total // MiB):
        yield block


async def test_a_reload_csv_line_without_an_end_fails_at_the_record_limit(
    pool: asyncpg.Pool, default_limits: InputLimits
) -> None:
    columns = [tabular.Column("id", "integer"), tabular.Column("name", "text")]
    table = f"t_{uuid.uuid4().hex[:8]}"
    with RssPeak() as rss:
        async with pool.acquire() as conn, conn.transaction():
            await tabular.create_staging_table(conn, "public", table, columns)
            with pytest.raises(RowError) as raised:
                await tabular.copy_csv(
                    conn, "public", table, columns, tabular.CsvOptions(),
                    endless_line(b"id,name\n1,ok\n", GiB), file_name="orders.csv",
                )  # fmt: skip
    error = raised.value
    assert (error.file, error.line) == ("orders.csv", 3)
    assert f"longer than {default_limits.max_record_bytes} bytes" in str(error)
    assert rss.growth < RSS_BOUND, f"RSS grew by {rss.growth / MiB:.0f} MiB"


WS_COLUMNS = (WorkspaceColumn(name="cp__id", type="integer"), WorkspaceColumn(name="a__name"))


def workspace_request(key: str) -> tuple[WorkspaceLoadRequested, WorkspaceTarget]:
    ws = WorkspaceTarget(
        workspace_id="ws-c1", client_id="c1", schema_name=f"ws_{uuid.uuid4().hex[:12]}", mode="full"
    )
    event = WorkspaceLoadRequested(
        request_id=str(uuid.uuid4()), run_id="run-1", data_product_id="dp-1", dataset="items",
        columns=WS_COLUMNS, grain=(), bucket="ws-source", keys=(key,),
        timestamp="20200821120000", targets=(ws,),
    )  # fmt: skip
    return event, ws


async def workspace_load(pool: asyncpg.Pool, key: str, data: bytes) -> str | None:
    async def open_object(name: str) -> AsyncIterator[bytes]:
        for i in range(0, len(data), MiB):
            yield data[i : i + MiB]

    event, _ = workspace_request(key)
    async with pool.acquire() as conn, conn.transaction():
        done = await workspace_loads.load_into_workspaces(conn, open_object, event)
    assert [r.status for r in done.results] == ["failed"]
    return done.results[0].reason


async def test_a_workspace_gzip_bomb_fails_every_target(
    pool: asyncpg.Pool, low_limits: InputLimits
) -> None:
    data = bomb(b"cp__id,a__name\n", b"1,a\n", GiB)
    with RssPeak() as rss:
        reason = await workspace_load(pool, "items_20200821120000_full.csv.gz", data)
    assert reason is not None and "LOADBAY_LOADER_MAX_DECOMPRESSED_BYTES" in reason, reason
    assert reason.startswith("items_20200821120000_full.csv.gz")
    assert rss.growth < RSS_BOUND, f"RSS grew by {rss.growth / MiB:.0f} MiB"


async def test_a_workspace_csv_without_line_breaks_fails_at_the_record_limit(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "_current", InputLimits(max_compression_ratio=10**9))
    data = bomb(b"cp__id,a__name\n", b"a", 256 * MiB)
    reason = await workspace_load(pool, "items_20200821120000_full.csv.gz", data)
    assert reason is not None and "line 2" in reason and "LOADBAY_LOADER_MAX_RECORD_BYTES" in reason


async def test_a_workspace_file_with_ten_thousand_columns_fails(pool: asyncpg.Pool) -> None:
    header = "cp__id,a__name," + ",".join(f"a__x{i}" for i in range(9_998))
    reason = await workspace_load(pool, "items_20200821120000_full.csv", (header + "\n").encode())
    assert reason is not None and "10000 columns" in reason and "at most 1000" in reason


def test_the_column_limit_stays_below_postgresql_s() -> None:
    with pytest.raises(ValueError, match="1600"):
        limits.configure(InputLimits(max_columns=1600))
    assert limits.current().max_columns < limits.POSTGRES_MAX_COLUMNS
