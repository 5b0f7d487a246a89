"""Routing a plain CSV file's rows to client ids by bytes (workspace/routing.py): which files
route, where rows go, and the spool that keeps memory bounded. No servers needed."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from loadbay_loader.workspace.keys import KeyWatch
from loadbay_loader.workspace.routing import Layout, NotDirect, Router, Spool

COLUMNS = ("cp__id", "a__name", "f__amount")


def route(header: str, body: bytes, *, chunk: int = 5, budget: int = 1 << 20) -> Router:
    """Feed ``body`` (the lines after ``header``) in ``chunk``-byte pieces."""
    layout = Layout.of(header.split(","), COLUMNS)
    router = Router(layout, ["acme", "beta"], Spool(budget), max_line=1000)
    for i in range(0, len(body), chunk):
        router.feed(body[i : i + chunk])
    router.end_part()
    return router


def rows_of(router: Router, client: str) -> bytes:
    return b"".join(router.spool.read(client.encode()))


def test_rows_go_to_their_client_in_file_order_across_chunk_boundaries() -> None:
    body = b"1,a,1.5,acme,false\n2,b,2,beta,\n3,c,3,acme,f\n4,d,4,ghost,false\n5,e,5,,false"
    router = route("cp__id,a__name,f__amount,x__client_id,x__deleted", body)
    assert rows_of(router, "acme") == b"1,a,1.5\n3,c,3\n"
    assert rows_of(router, "beta") == b"2,b,2\n"
    assert router.unknown == {b"ghost"}
    assert router.without_client == 1
    assert router.rows == 5
    assert router.bytes == len(body)


def test_system_columns_may_come_first_and_dataset_columns_in_any_order() -> None:
    body = b"acme,x,1,a,1\nbeta,y,2,b,2\n"
    router = route("x__client_id,x__timestamp,f__amount,a__name,cp__id", body)
    assert router.layout.columns == ("f__amount", "a__name", "cp__id")
    assert rows_of(router, "acme") == b"1,a,1\n"
    assert rows_of(router, "beta") == b"2,b,2\n"


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("cp__id,a__name,f__amount", "no x__client_id"),
        ("cp__id,x__client_id,a__name,f__amount", "not all together"),
        ("cp__id,a__name,f__amount,x__client_id,x__client_id", "twice"),
    ],
)
def test_headers_that_do_not_route_by_bytes(header: str, why: str) -> None:
    with pytest.raises(NotDirect, match=why):
        Layout.of(header.split(","), COLUMNS)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'1,"a,b",1,acme\n', "quote"),
        (b"1,a,1,acme\r\n", "carriage return"),
        (b"1,a\x00,1,acme\n", "NUL"),
        (b"1,a,1,acme\n\\.\n2,b,2,acme\n", r"only \\\."),
        (b"1,\xff,1,acme\n", "not UTF-8"),
        (b"acme\n", "too few fields"),  # (a short dataset part: COPY refuses it)
        (b"1,a,1,2,ghost\n", "wrong number of fields"),  # even for a client of no target
        (b"1,a," + b"9" * 2000 + b",acme\n", "longer than 1000 bytes"),
    ],
)
def test_rows_that_do_not_route_by_bytes(body: bytes, why: str) -> None:
    with pytest.raises(NotDirect, match=why):
        route("cp__id,a__name,f__amount,x__client_id", body, chunk=4096)


@pytest.mark.parametrize("deleted", [b"true", b"t", b"1", b"yes", b" false"])
def test_a_deleted_row_or_an_unusual_false_takes_the_staging_path(deleted: bytes) -> None:
    with pytest.raises(NotDirect, match="x__deleted"):
        route("cp__id,a__name,f__amount,x__client_id,x__deleted", b"1,a,1,acme," + deleted)


def test_the_spool_spills_beyond_its_budget_and_reads_back_in_order() -> None:
    lines = [f"{i},n{i},{i},{'acme' if i % 3 else 'beta'}\n".encode() for i in range(300)]
    router = route("cp__id,a__name,f__amount,x__client_id", b"".join(lines), budget=100)
    assert router.spool._file is not None  # spilled to disk at least once
    for client in ("acme", "beta"):
        expected = b"".join(
            line.rsplit(b",", 1)[0] + b"\n"
            for line in lines
            if line.endswith(f",{client}\n".encode())
        )
        assert rows_of(router, client) == expected
    router.spool.close()


# --------------------------------------------------------------------------- keys by bytes


def watch(rows: bytes, positions: tuple[int, ...], types: tuple[str, ...]) -> KeyWatch:
    keys = KeyWatch(positions, types, limit=5)
    for i in range(0, len(rows), 3):  # chunks cut anywhere
        keys.see(rows[i : i + 3])
    return keys


def test_unique_canonical_keys_are_decided_by_bytes() -> None:
    assert watch(b"1,a\n-7,b\n0,c\n", (0,), ("integer",)).decided
    assert watch(b"x,1\nx,2\ny,1\n", (0, 1), ("text", "bigint")).decided


@pytest.mark.parametrize(
    ("rows", "positions", "types", "why"),
    [
        (b"1,a\n2,b\n1,c\n", (0,), ("integer",), "repeated"),
        (b"a,1\nb,1\n", (1,), ("text",), "repeated"),  # text keys: equal bytes, equal values
        (b"1,a\n,b\n", (0,), ("integer",), "empty"),
        (b"x,1\nx,\n", (0, 1), ("text", "integer"), "empty"),
    ],
)
def test_a_missing_or_repeated_key_stops_the_copy(
    rows: bytes, positions: tuple[int, ...], types: tuple[str, ...], why: str
) -> None:
    with pytest.raises(NotDirect, match=why):
        watch(rows, positions, types)


@pytest.mark.parametrize(
    ("rows", "types"),
    [
        (b"01,a\n1,b\n", ("integer",)),  # one value, two spellings: bytes cannot tell
        (b"+1,a\n", ("integer",)),
        (b"-0,a\n", ("bigint",)),
        (b" 1,a\n", ("integer",)),
        (b"1.0,a\n", ("numeric",)),
        (b"2030-01-01,a\n", ("date",)),
        (b"1,a\n2,b\n3,c\n4,d\n5,e\n6,f\n", ("integer",)),  # more keys than the limit
    ],
)
def test_what_bytes_cannot_tell_is_left_to_postgresql(rows: bytes, types: tuple[str, ...]) -> None:
    assert not watch(rows, (0,), types).decided


def test_a_spool_that_cannot_spill_hands_the_load_over(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # no such directory
    with pytest.raises(NotDirect, match="cannot spill"):
        route("cp__id,a__name,f__amount,x__client_id", b"1,a,1,acme\n" * 50, budget=100)
