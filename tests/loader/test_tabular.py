"""The tabular fast path against a real PostgreSQL (the embedded stack's wheel) and, for one
test, S3 (moto)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

# Test data: the project's copy once it exists, else the team's shared conformance folder.
CONFORMANCE = (
    _repo_data
    if (_repo_data := Path(__file__).resolve().parents[2] / "tests" / "data").is_dir()
    else Path("/work/shared/conformance")
)

try:
    import loadbay_loader.warehouse.tabular  # noqa: F401
except ModuleNotFoundError:  # the loader package is not installed in this environment yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "services" / "loader" / "src"))

from loadbay_loader.streaming.objects import prefetch, s3_chunks  # noqa: E402
from loadbay_loader.warehouse.copy_errors import CsvRecordScanner, RowError  # noqa: E402
from loadbay_loader.warehouse.tabular import (  # noqa: E402
    Column,
    CopyResult,
    CsvOptions,
    copy_csv,
    create_staging_table,
    swap_in,
)
from tests.own_postgres import own_postgres  # noqa: E402

SPECTRUM = CONFORMANCE / "csv-spectrum"
USGS = CONFORMANCE / "usgs-earthquakes-2015-11-22_2015-12-22.csv"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data not found: {path}")
    return path


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pg_uri() -> Iterator[str]:
    with own_postgres("loadbay-pg-") as url:
        yield url


@pytest.fixture
async def conn(pg_uri: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg_uri)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def schema(conn: asyncpg.Connection) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    await conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        if conn.is_in_transaction():
            await conn.execute("ROLLBACK")
        await conn.execute(f'DROP SCHEMA "{name}" CASCADE')


# --------------------------------------------------------------------------- helpers


async def chunks_of(data: bytes, size: int = 1 << 16) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def text_columns(*names: str) -> list[Column]:
    return [Column(name, "text") for name in names]


async def load(
    conn: asyncpg.Connection,
    schema: str,
    columns: list[Column],
    data: bytes,
    *,
    table: str = "stg",
    options: CsvOptions | None = None,
    file_name: str = "f.csv",
    chunk: int = 1 << 16,
    reopen: bool = True,
) -> CopyResult:
    """Create ``schema.table`` and copy ``data`` into it (re-readable unless reopen=False)."""
    await create_staging_table(conn, schema, table, columns)
    return await copy_csv(
        conn,
        schema,
        table,
        columns,
        options or CsvOptions(),
        chunks_of(data, chunk),
        file_name=file_name,
        reopen=(lambda: chunks_of(data, 5)) if reopen else None,
    )


async def load_error(
    conn: asyncpg.Connection, schema: str, columns: list[Column], data: bytes, **kw: Any
) -> RowError:
    with pytest.raises(RowError) as info:
        await load(conn, schema, columns, data, **kw)
    return info.value


async def rows(conn: asyncpg.Connection, schema: str, table: str = "stg") -> list[dict[str, Any]]:
    records = await conn.fetch(f'SELECT * FROM "{schema}"."{table}" ORDER BY ctid')
    return [dict(r) for r in records]


# --------------------------------------------------------------------------- conformance


def spectrum_cases() -> list[str]:
    csvs = SPECTRUM / "csvs"
    return sorted(p.stem for p in csvs.glob("*.csv")) if csvs.is_dir() else ["missing"]


@pytest.mark.parametrize("chunk", [3, 1 << 16], ids=["3-byte-chunks", "one-chunk"])
@pytest.mark.parametrize("case", spectrum_cases())
async def test_csv_spectrum_loads_to_expected_json(
    conn: asyncpg.Connection, schema: str, case: str, chunk: int
) -> None:
    data = need(SPECTRUM / "csvs" / f"{case}.csv").read_bytes()
    expected = json.loads((SPECTRUM / "json" / f"{case}.json").read_text("utf-8"))
    columns = text_columns(*expected[0])

    result = await load(conn, schema, columns, data, chunk=chunk, file_name=f"{case}.csv")

    assert result == CopyResult(rows=len(expected), bytes=len(data))
    assert await rows(conn, schema) == expected


async def test_usgs_earthquakes_load_typed(conn: asyncpg.Connection, schema: str) -> None:
    data = need(USGS).read_bytes()
    # Declared in another order and case than the file's header: matching ignores both.
    columns = [
        Column("id", "text", nullable=False),
        Column("time", "timestamptz", nullable=False),
        Column("updated", "timestamptz"),
        Column("latitude", "numeric"),
        Column("longitude", "numeric"),
        Column("depth", "numeric"),
        Column("mag", "numeric"),
        Column("magtype", "text"),
        Column("nst", "integer"),
        Column("gap", "numeric"),
        Column("dmin", "numeric"),
        Column("rms", "numeric"),
        Column("net", "text"),
        Column("place", "text"),
        Column("type", "text"),
    ]
    result = await load(conn, schema, columns, data, file_name=USGS.name)

    assert result == CopyResult(rows=7268, bytes=len(data))
    stats = await conn.fetchrow(
        f'SELECT count(*) AS n, count(DISTINCT id) AS ids, count(nst) AS nst FROM "{schema}".stg'
    )
    assert dict(stats) == {"n": 7268, "ids": 7268, "nst": 4746}  # 2,522 empty nst: NULL
    first = await conn.fetchrow(f'SELECT * FROM "{schema}".stg WHERE id = $1', "ak12293661")
    assert dict(first) == {
        "id": "ak12293661",
        "time": dt.datetime(2015, 12, 22, 18, 45, 11, tzinfo=dt.UTC),
        "updated": dt.datetime(2015, 12, 22, 19, 9, 29, 736000, tzinfo=dt.UTC),
        "latitude": Decimal("59.9988"),
        "longitude": Decimal("-152.7191"),
        "depth": Decimal("100"),
        "mag": Decimal("3"),
        "magtype": "ml",
        "nst": None,
        "gap": None,
        "dmin": None,
        "rms": Decimal("0.54"),
        "net": "ak",
        "place": "54km S of Redoubt Volcano, Alaska",
        "type": "earthquake",
    }


# --------------------------------------------------------------------------- values and header


async def test_null_and_empty_string(conn: asyncpg.Connection, schema: str) -> None:
    columns = [Column("t", "text"), Column("n", "integer"), Column("d", "date")]
    data = b't,n,d\n"",,\n,"",""\nx,1,2020-01-02\n'
    await load(conn, schema, columns, data)
    assert await rows(conn, schema) == [
        {"t": "", "n": None, "d": None},  # quoted "" in text: empty string
        {"t": None, "n": None, "d": None},  # unquoted empty: NULL; "" in other types: NULL
        {"t": "x", "n": 1, "d": dt.date(2020, 1, 2)},
    ]


async def test_header_bom_case_order_and_spaces(conn: asyncpg.Connection, schema: str) -> None:
    columns = [Column("a", "integer"), Column("Bee", "text"), Column("c", "boolean")]
    data = b'\xef\xbb\xbf C , "BEE",A\r\ntrue,x,1\r\nf,"y\r\nz",2'  # no final line break
    result = await load(conn, schema, columns, data, chunk=2)
    assert result.rows == 2
    assert await rows(conn, schema) == [
        {"a": 1, "Bee": "x", "c": True},
        {"a": 2, "Bee": "y\r\nz", "c": False},
    ]


async def test_header_only_file_loads_nothing(conn: asyncpg.Connection, schema: str) -> None:
    assert (await load(conn, schema, text_columns("a", "b"), b"a,b")).rows == 0
    assert await rows(conn, schema) == []


async def test_other_delimiter_escape_and_encoding(conn: asyncpg.Connection, schema: str) -> None:
    options = CsvOptions(delimiter=";", escape="\\", encoding="latin-1")
    data = 'name;note\ncafé;"say \\"hi\\"; twice"\n'.encode("latin-1")
    await load(conn, schema, text_columns("name", "note"), data, options=options)
    assert await rows(conn, schema) == [{"name": "café", "note": 'say "hi"; twice'}]


async def test_file_without_header(conn: asyncpg.Connection, schema: str) -> None:
    columns = [Column("a", "integer"), Column("b", "text")]
    options = CsvOptions(header=False)
    await load(conn, schema, columns, b"1,x\n2,y\n", options=options)
    assert await rows(conn, schema) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    error = await load_error(conn, schema, columns, b"1,x\nz,y\n", options=options, table="s2")
    assert (error.line, error.column, error.value) == (2, "a", "z")  # no header: line 1 is data
    empty = await load_error(conn, schema, columns, b"", options=options, table="s3")
    assert "file is empty" in empty.reason
    marker = await load_error(
        conn, schema, text_columns("a"), b"\\.\nx\n", options=options, table="s4"
    )
    assert marker.line == 1


# --------------------------------------------------------------------------- bad input


async def test_bad_value_names_file_line_column_value(
    conn: asyncpg.Connection, schema: str
) -> None:
    columns = [Column("id", "integer"), Column("amount", "numeric")]
    error = await load_error(
        conn, schema, columns, b"id,amount\n1,2.5\n2,abc\n3,4\n", file_name="orders_2.csv"
    )
    assert (error.file, error.line, error.column, error.value) == (
        "orders_2.csv",
        3,
        "amount",
        "abc",
    )
    assert (
        str(error)
        == "orders_2.csv line 3, column 'amount': invalid input syntax for type numeric: \"abc\""
    )
    assert isinstance(error.__cause__, asyncpg.InvalidTextRepresentationError)


@pytest.mark.parametrize("reopen", [True, False])
async def test_short_and_long_rows(conn: asyncpg.Connection, schema: str, reopen: bool) -> None:
    columns = text_columns("a", "b", "c")
    short = await load_error(conn, schema, columns, b"a,b,c\n1,2,3\n4,5\n", reopen=reopen)
    assert (short.line, short.column, short.value) == (3, "c", None)
    assert "too few fields" in short.reason

    long = await load_error(
        conn, schema, columns, b"a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n", table="stg2", reopen=reopen
    )
    assert (long.line, long.column) == (4, None)
    assert "too many fields" in long.reason


async def test_unterminated_quote(conn: asyncpg.Connection, schema: str) -> None:
    columns = text_columns("a", "b")
    data = b'a,b\n1,x\n2,"never closed\n3,y\n4,z\n'
    # PostgreSQL counts the whole rest of the file as one record and reports its last line...
    plain = await load_error(conn, schema, columns, data, reopen=False)
    assert plain.line == 6
    assert "unterminated quoted field" in str(plain)
    # ...re-reading the file (the slow path, after the failure) finds where it starts.
    placed = await load_error(conn, schema, columns, data, table="stg2")
    assert (placed.line, placed.column) == (3, None)


async def test_invalid_utf8(conn: asyncpg.Connection, schema: str) -> None:
    error = await load_error(
        conn, schema, text_columns("a", "b"), b"a,b\n1,ok\n2,caf\xe9\n", file_name="x.csv"
    )
    assert (error.file, error.line, error.column) == ("x.csv", 3, "b")
    assert error.value == "caf\ufffd"
    assert 'invalid byte sequence for encoding "UTF8": 0xe9' in error.reason
    assert "not valid utf-8" in error.reason
    assert isinstance(error.__cause__, asyncpg.CharacterNotInRepertoireError)


async def test_invalid_utf8_names_its_column_in_a_quoted_multiline_record(
    conn: asyncpg.Connection, schema: str
) -> None:
    data = b'c,a,b\n1,"x,\ny",ok\n2,"line\nbreak, then \xff",z\n'
    error = await load_error(conn, schema, text_columns("a", "b", "c"), data, file_name="y.csv")
    # The header's order, not the dataset's: the bad bytes are in the file's second column.
    assert (error.line, error.column) == (4, "a")  # where the record starts
    assert error.value is not None and error.value.endswith("then \ufffd")


@pytest.mark.parametrize("data", [b"", b"\n", b"\xef\xbb\xbf\r\n"], ids=["0-bytes", "lf", "bom"])
async def test_empty_file(conn: asyncpg.Connection, schema: str, data: bytes) -> None:
    error = await load_error(conn, schema, text_columns("a"), data, file_name="e.csv")
    assert error.file == "e.csv"
    assert "file is empty" in str(error)


async def test_header_not_matching(conn: asyncpg.Connection, schema: str) -> None:
    columns = text_columns("id", "amount", "date")
    error = await load_error(conn, schema, columns, b"id,amt,Date,extra\n1,2,3,4\n")
    assert (error.line, error.column) == (1, None)
    assert error.reason == (
        "header does not match the dataset's columns: missing 'amount'; unexpected 'amt', 'extra'"
    )
    repeated = await load_error(conn, schema, columns, b"id,amount,date,ID\n", table="stg2")
    assert "repeated 'ID'" in repeated.reason


async def test_not_null_violation(conn: asyncpg.Connection, schema: str) -> None:
    columns = [Column("id", "integer", nullable=False), Column("name", "text", nullable=False)]
    error = await load_error(conn, schema, columns, b'id,name\n1,a\n2,""\n3,\n')
    assert (error.line, error.column, error.value) == (4, "name", None)  # "" is a value: ok
    assert error.reason == 'column "name" requires a value but the field is empty'


async def test_lines_around_quoted_line_breaks(conn: asyncpg.Connection, schema: str) -> None:
    columns = [Column("a", "integer"), Column("b", "date"), Column("c", "text")]
    for eol in (b"\n", b"\r\n"):
        head = b"a,b,c" + eol + b'1,2020-01-01,"x' + eol + b"x" + eol + b'x"' + eol  # lines 1-4
        after = head + b"2,notadate,y" + eol  # line 5
        inside = head + b'2,"2020' + eol + b'-01",y' + eol  # lines 5-6
        for reopen in (False, True):
            table = f"s{len(eol)}{int(reopen)}"
            error = await load_error(conn, schema, columns, after, reopen=reopen, table=table)
            assert (error.line, error.column, error.value) == (5, "b", "notadate")
            error = await load_error(
                conn, schema, columns, inside, reopen=reopen, table=table + "i"
            )
            # PostgreSQL reports the record's last line; the slow path its first.
            assert (error.line, error.column) == (5 if reopen else 6, "b")
            assert error.value == "2020" + eol.decode() + "-01"


@pytest.mark.parametrize("reopen", [True, False])
async def test_end_of_data_marker_line_is_rejected(
    conn: asyncpg.Connection, schema: str, reopen: bool
) -> None:
    # PostgreSQL before 18 would stop at the \. line and load only the first row, without an
    # error (18 reads it as data): refused either way.
    data = b"a\n1\n\\.\n2\n"
    error = await load_error(conn, schema, text_columns("a"), data, reopen=reopen)
    assert error.line == (3 if reopen else None)
    assert "\\." in error.reason
    assert await rows(conn, schema) == []  # the savepoint rolled the COPY back


async def test_end_of_data_marker_inside_quotes_is_data(
    conn: asyncpg.Connection, schema: str
) -> None:
    data = b'a,b\n1,"x\n\\.\ny"\n2,\\.x\n'
    await load(conn, schema, text_columns("a", "b"), data, chunk=4)
    assert await rows(conn, schema) == [{"a": "1", "b": "x\n\\.\ny"}, {"a": "2", "b": "\\.x"}]


async def test_failure_keeps_dataset_and_transaction(conn: asyncpg.Connection, schema: str) -> None:
    columns = [Column("id", "integer"), Column("v", "text")]
    await create_staging_table(conn, schema, "orders", columns)
    await conn.execute(f"INSERT INTO \"{schema}\".orders VALUES (1, 'old'), (2, 'old')")
    staging = f'"{schema}".orders__stg'

    with pytest.raises(RowError, match=r"b\.csv line 3"):
        async with conn.transaction():  # a reload: staging, its files, swap_in - all or nothing
            await create_staging_table(conn, schema, "orders__stg", columns)
            await copy_csv(
                conn, schema, "orders__stg", columns, CsvOptions(),
                chunks_of(b"id,v\n10,new\n"), file_name="a.csv",
            )  # fmt: skip
            try:
                await copy_csv(
                    conn, schema, "orders__stg", columns, CsvOptions(),
                    chunks_of(b"id,v\n11,new\nx,new\n"), file_name="b.csv",
                )  # fmt: skip
            except RowError:
                # The failed file left no rows and the transaction is still usable...
                assert await conn.fetchval(f"SELECT count(*) FROM {staging}") == 1
                raise  # ...but the reload fails: roll back, swap_in never runs
            await swap_in(conn, schema, "orders", "orders__stg")

    assert await rows(conn, schema, "orders") == [{"id": 1, "v": "old"}, {"id": 2, "v": "old"}]
    assert await conn.fetchval("SELECT to_regclass($1)", staging) is None


# --------------------------------------------------------------------------- swap_in


async def _reload(
    conn: asyncpg.Connection, schema: str, target: str, values: list[str], tag: str
) -> None:
    columns = [Column("n", "integer"), Column("v", "text")]
    data = b"n,v\n" + b"".join(f"{i},{v}\n".encode() for i, v in enumerate(values))
    staging = f"{target}__{tag}"
    async with conn.transaction():
        await create_staging_table(conn, schema, staging, columns)
        await copy_csv(
            conn, schema, staging, columns, CsvOptions(), chunks_of(data), file_name=f"{tag}.csv"
        )
        await swap_in(conn, schema, target, staging)


async def test_swap_in_replaces_and_needs_a_transaction(
    conn: asyncpg.Connection, schema: str
) -> None:
    await _reload(conn, schema, "ds", ["a", "b"], "g1")  # no old table: just a rename
    await _reload(conn, schema, "ds", ["c"], "g2")
    assert await rows(conn, schema, "ds") == [{"n": 0, "v": "c"}]
    await create_staging_table(conn, schema, "ds__g3", text_columns("x"))
    with pytest.raises(RuntimeError, match="inside a transaction"):
        await swap_in(conn, schema, "ds", "ds__g3")
    tables = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema
    )
    assert [t["tablename"] for t in tables] == ["ds", "ds__g3"]


async def test_swap_in_readers_see_old_or_new(
    conn: asyncpg.Connection, schema: str, pg_uri: str
) -> None:
    generations = {f"g{k}": 500 + 100 * k for k in range(6)}  # tag -> row count
    await _reload(conn, schema, "ds", ["g0"] * generations["g0"], "g0")
    readers = [await asyncpg.connect(pg_uri) for _ in range(3)]
    seen: list[tuple[int, str, str]] = []
    stop = asyncio.Event()

    async def read(reader: asyncpg.Connection) -> None:
        while not stop.is_set():
            r = await reader.fetchrow(f'SELECT count(*) AS n, min(v), max(v) FROM "{schema}".ds')
            seen.append((r["n"], r["min"], r["max"]))

    tasks = [asyncio.create_task(read(r)) for r in readers]
    try:
        for tag, n in list(generations.items())[1:]:
            await asyncio.sleep(0.05)
            await _reload(conn, schema, "ds", [tag] * n, tag)
        await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)  # a reader that saw "relation does not exist" fails here
        for r in readers:
            await r.close()
    assert len(seen) > 20
    for n, low, high in seen:
        assert low == high and generations[low] == n, (n, low, high)
    assert {low for _, low, _ in seen} >= {"g0", "g5"}


async def test_swap_in_waits_for_old_readers_and_queues_new_ones(
    conn: asyncpg.Connection, schema: str, pg_uri: str
) -> None:
    await _reload(conn, schema, "ds", ["old"] * 3, "old")
    old_reader, new_reader = await asyncpg.connect(pg_uri), await asyncpg.connect(pg_uri)
    query = f'SELECT count(*) AS n, min(v) AS v FROM "{schema}".ds'
    try:
        reading = old_reader.transaction()
        await reading.start()
        assert dict(await old_reader.fetchrow(query)) == {"n": 3, "v": "old"}

        swap = asyncio.create_task(_reload(conn, schema, "ds", ["new"] * 2, "new"))
        await asyncio.sleep(0.3)
        assert not swap.done()  # the drop waits for the reader of the old rows
        assert dict(await old_reader.fetchrow(query)) == {"n": 3, "v": "old"}

        late = asyncio.create_task(new_reader.fetchrow(query))
        await asyncio.sleep(0.3)
        assert not late.done()  # queued behind the swap's lock
        await reading.commit()
        await asyncio.wait_for(swap, 5)
        assert dict(await asyncio.wait_for(late, 5)) == {"n": 2, "v": "new"}
    finally:
        await old_reader.close()
        await new_reader.close()


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("name", ["1a", 'a"b', "a;drop table x", "", "x" * 64, "é"])
async def test_identifiers_are_validated(conn: asyncpg.Connection, schema: str, name: str) -> None:
    with pytest.raises(ValueError, match="invalid identifier"):
        await create_staging_table(conn, schema, name, text_columns("a"))
    with pytest.raises(ValueError, match="invalid identifier"):
        await create_staging_table(conn, schema, "t", text_columns(name))
    with pytest.raises(ValueError, match="invalid identifier"):
        await swap_in(conn, name, "a", "b")


async def test_bad_declarations_are_rejected(conn: asyncpg.Connection, schema: str) -> None:
    with pytest.raises(ValueError, match="declared twice"):
        await create_staging_table(conn, schema, "t", text_columns("a", "A"))
    with pytest.raises(ValueError, match="unknown type"):
        await create_staging_table(conn, schema, "t", [Column("a", "money")])  # type: ignore[arg-type]
    for options in (CsvOptions(encoding="utf-16"), CsvOptions(quote=","), CsvOptions(escape="")):
        with pytest.raises(ValueError):
            await copy_csv(
                conn, schema, "t", text_columns("a"), options, chunks_of(b"a\n"), file_name="f"
            )


def test_row_error_pickles() -> None:
    import pickle

    error = RowError("f.csv", "bad", line=2, column="c", value="v")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.line, copy.column, copy.value) == (str(error), 2, "c", "v")
    assert str(RowError("f.csv", "file is empty")) == "f.csv: file is empty"


# --------------------------------------------------------------------------- record scanner


def spans(data: bytes, chunk: int, **kw: Any) -> list[tuple[int, int, int, int, bool, bool]]:
    scanner = CsvRecordScanner(**kw)
    out = []
    for i in range(0, len(data), chunk):
        out += scanner.feed(data[i : i + chunk])
    last = scanner.finish()
    out += [last] if last else []
    return [(s.first_line, s.last_line, s.pg_first, s.pg_last, s.unterminated, s.end_marker)
            for s in out]  # fmt: skip


@pytest.mark.parametrize("chunk", [1, 2, 3, 1000])
def test_scanner_follows_postgres_record_rules(chunk: int) -> None:
    data = b'h\r\n"a\r\nb",""""\r\n\\.\r\nx\rlast'
    assert spans(data, chunk) == [
        (1, 1, 1, 1, False, False),
        (2, 3, 2, 3, False, False),  # CRLF file: PostgreSQL counts the embedded \r
        (4, 4, 4, 4, False, True),
        (5, 5, 5, 5, False, False),
        (6, 6, 6, 6, False, False),
    ]
    # Unterminated: PostgreSQL counts every line break to the end, the last one too.
    assert spans(b'h\n"a\n\nb\n', chunk) == [(1, 1, 1, 1, False, False), (2, 4, 2, 5, True, False)]
    # With a separate escape, \" inside quotes does not close the field.
    escaped = b'h\n"a\\"\nb"\nc\n'
    assert spans(escaped, chunk, escape="\\") == [
        (1, 1, 1, 1, False, False),
        (2, 3, 2, 3, False, False),
        (4, 4, 4, 4, False, False),
    ]


# --------------------------------------------------------------------------- prefetch


async def test_prefetch_keeps_order_and_bounds_read_ahead() -> None:
    produced = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal produced
        for i in range(20):
            produced += 1
            yield bytes([i])

    got = []
    async for chunk in prefetch(source(), depth=3):
        got.append(chunk[0])
        await asyncio.sleep(0.01)
        assert produced - len(got) <= 3 + 1
    assert got == list(range(20))


async def test_prefetch_raises_source_errors_in_order() -> None:
    async def source() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"
        raise OSError("connection reset")

    got = []
    with pytest.raises(OSError, match="connection reset"):
        async for chunk in prefetch(source()):
            got.append(chunk)
    assert got == [b"a", b"b"]


async def test_prefetch_closed_early_stops_and_closes_source() -> None:
    closed = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x"
        finally:
            closed.set()

    stream = prefetch(source(), depth=2)
    assert await anext(stream) == b"x"
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(closed.wait(), 1)
    pending = [t for t in asyncio.all_tasks() if "read_ahead" in repr(t.get_coro())]
    assert pending == []


# --------------------------------------------------------------------------- S3


async def test_s3_streamed_load(conn: asyncpg.Connection, schema: str, moto_endpoint: str) -> None:
    from aiobotocore.session import get_session

    data = need(USGS).read_bytes()
    bad = data.replace(b"\n", b'\n"', 1)  # an unterminated quote on line 2
    columns = text_columns(*data.split(b"\n", 1)[0].decode().split(","))
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ) as s3:
        await s3.create_bucket(Bucket="tabular-landing")
        await s3.put_object(Bucket="tabular-landing", Key="quakes.csv", Body=data)
        await s3.put_object(Bucket="tabular-landing", Key="bad.csv", Body=bad)

        def opener(key: str) -> Callable[[], AsyncIterator[bytes]]:
            return lambda: s3_chunks(s3, "tabular-landing", key, chunk_size=1 << 14)

        await create_staging_table(conn, schema, "stg", columns)
        result = await copy_csv(
            conn, schema, "stg", columns, CsvOptions(),
            prefetch(opener("quakes.csv")(), depth=4), file_name="quakes.csv",
            reopen=opener("quakes.csv"),
        )  # fmt: skip
        assert result == CopyResult(rows=7268, bytes=len(data))

        with pytest.raises(RowError) as info:
            await copy_csv(
                conn, schema, "stg", columns, CsvOptions(),
                prefetch(opener("bad.csv")()), file_name="bad.csv", reopen=opener("bad.csv"),
            )  # fmt: skip
        assert (info.value.file, info.value.line) == ("bad.csv", 2)
    assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".stg') == 7268


@pytest.mark.parametrize("chunk", [7, 1 << 16])
async def test_a_line_longer_than_the_record_limit_fails_the_file(
    conn: asyncpg.Connection, schema: str, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    from loadbay_loader.streaming import limits

    monkeypatch.setattr(limits, "_current", limits.InputLimits(max_record_bytes=100))
    data = b"a,b\n1,x\n2," + b"y" * 200 + b"\n3,z\n"
    error = await load_error(conn, schema, text_columns("a", "b"), data, chunk=chunk)
    assert (error.file, error.line) == ("f.csv", 3)
    assert "longer than 100 bytes" in str(error) and "LOADBAY_LOADER_MAX_RECORD_BYTES" in str(error)
    assert not await conn.fetchval(f'SELECT count(*) FROM "{schema}".stg')
