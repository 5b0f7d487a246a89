"""The graph's read API (every stored type answered, dates as GraphSON's g:Date), Neptune's fast
reset (`POST /system`), and error texts a hostile file cannot make unstorable: on the
session's real servers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from loadbay_loader.graph import loads_store
from loadbay_loader.graph.reset_store import GRAPH_TABLES, KEPT_TABLES
from loadbay_platform.settings import PlatformSettings
from tests.conftest import Platform, User, eventually, make_user

ROLE = "arn:aws:iam::123456789012:role/NeptuneLoadFromS3"
BUCKET = "graph-sources"  # one of the session loader's readable sources
TERMINAL = {
    "LOAD_COMPLETED", "LOAD_FAILED", "LOAD_CANCELLED_BY_USER", "LOAD_UNEXPECTED_ERROR",
    "LOAD_CANCELLED_DUE_TO_ERRORS", "LOAD_FAILED_INVALID_REQUEST",
}  # fmt: skip
MISMATCH = "System command parameter 'token' : '{}' does not match database reset token"


@pytest.fixture(scope="module")
def bucket(s3: Any) -> str:
    existing = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    if BUCKET not in existing:
        s3.create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def tag(bucket: str) -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
async def neptune(platform: Platform, ann: User) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=platform.urls["loader"], headers=ann.headers, timeout=60
    ) as client:
        yield client


async def load(
    neptune: httpx.AsyncClient, platform: Platform, prefix: str, fmt: str, **extra: Any
) -> dict[str, Any]:
    """Start a load of s3://graph-sources/<prefix> and wait for its end; its status payload."""
    started = await neptune.post("/loader", json=request(platform, prefix, fmt, **extra))
    assert started.status_code == 200, started.text
    load_id = started.json()["payload"]["loadId"]

    async def done() -> dict[str, Any] | None:
        got = await neptune.get(f"/loader/{load_id}", params={"errors": "TRUE"})
        payload: dict[str, Any] = got.json()["payload"]
        return payload if payload["overallStatus"]["status"] in TERMINAL else None

    return await eventually(done, within=120)


def request(platform: Platform, prefix: str, fmt: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": f"s3://{BUCKET}/{prefix}",
        "format": fmt,
        "iamRoleArn": ROLE,
        "region": platform.settings.s3.region,
        **extra,
    }


def g_date(millis: int) -> dict[str, Any]:
    return {"@type": "g:Date", "@value": millis}


# --------------------------------------------------------------------------- reads


async def test_every_stored_type_is_answered_and_dates_as_graphson(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, tag: str
) -> None:
    vertices = (
        "~id,~label,b:Bool,by:Byte,sh:Short,i:Int,l:Long,f:Float,d:Double,s:String,"
        "born:Date,seen:Date[],at:DateTime,nan:Double,inf:Float,ninf:Double\n"
        f"{tag}-t,typed,true,-128,32767,2147483647,9223372036854775807,1.5,0.25,hi,"
        "2015-11-22,2020-02-29T23:59:59Z;1969-12-31T23:59,2015-11-22T10:30:00Z,"
        "NaN,Infinity,-Infinity\n"
    )
    edges = (
        "~id,~from,~to,~label,since:Date,w:Double,note:String\n"
        f"{tag}-e,{tag}-t,{tag}-t,self,2015-11-22T00:00:01Z,NaN,x\n"
    )
    s3.put_object(Bucket=BUCKET, Key=f"types/{tag}/a_vertices.csv", Body=vertices.encode())
    s3.put_object(Bucket=BUCKET, Key=f"types/{tag}/b_edges.csv", Body=edges.encode())
    payload = await load(neptune, platform, f"types/{tag}/", "csv")
    assert payload["overallStatus"]["status"] == "LOAD_COMPLETED", payload

    vertex = await neptune.get(f"/graph/vertices/{tag}-t")
    assert vertex.status_code == 200, vertex.text
    assert vertex.json()["properties"] == {
        "b": [True],
        "by": [-128],
        "sh": [32767],
        "i": [2147483647],
        "l": [9223372036854775807],
        "f": [1.5],
        "d": [0.25],
        "s": ["hi"],
        "born": [g_date(1448150400000)],
        "seen": [g_date(-60000), g_date(1583020799000)],
        "at": [g_date(1448188200000)],
        "nan": [{"@type": "g:Double", "@value": "NaN"}],
        "inf": [{"@type": "g:Double", "@value": "Infinity"}],
        "ninf": [{"@type": "g:Double", "@value": "-Infinity"}],
    }
    edge = await neptune.get(f"/graph/edges/{tag}-e")
    assert edge.status_code == 200, edge.text
    assert edge.json()["properties"] == {
        "since": g_date(1448150401000),
        "w": {"@type": "g:Double", "@value": "NaN"},
        "note": "x",
    }


async def test_opencypher_datetimes_are_answered_and_auto_cast_dates_stay_strings(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, tag: str
) -> None:
    nodes = f":ID,:LABEL,when:DateTime,day:Date\n{tag}-n,Event,2015-11-22T10:30,2015-11-22\n"
    rels = f":ID,:START_ID,:END_ID,:TYPE,at:DateTime\n{tag}-r,{tag}-n,{tag}-n,NEXT,1970-01-02\n"
    s3.put_object(Bucket=BUCKET, Key=f"ocy/{tag}/a_nodes.csv", Body=nodes.encode())
    s3.put_object(Bucket=BUCKET, Key=f"ocy/{tag}/b_rels.csv", Body=rels.encode())
    payload = await load(neptune, platform, f"ocy/{tag}/", "opencypher")
    assert payload["overallStatus"]["status"] == "LOAD_COMPLETED", payload

    node = (await neptune.get(f"/graph/vertices/{tag}-n")).json()
    assert node["properties"] == {"when": [g_date(1448188200000)], "day": ["2015-11-22"]}
    rel = (await neptune.get(f"/graph/edges/{tag}-r")).json()
    assert rel["properties"] == {"at": g_date(86400000)}


# --------------------------------------------------------------------------- hostile error texts


async def test_a_parsing_error_quoting_a_nul_is_stored_and_the_load_ends(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, tag: str
) -> None:
    # pyoxigraph quotes the offending character in its message; PostgreSQL text holds no NUL.
    body = b'@prefix e: <http://ex.org/> .\ne:s e:p "ok" .\ne:s e:p e:\x00 .\n'
    s3.put_object(Bucket=BUCKET, Key=f"nul/{tag}/d.ttl", Body=body)
    payload = await load(neptune, platform, f"nul/{tag}/", "turtle")
    assert payload["overallStatus"]["status"] == "LOAD_FAILED", payload
    (log,) = payload["errors"]["errorLogs"]
    assert log["errorCode"] == "PARSING_ERROR" and log["recordNum"] == 3
    assert log["fileName"] == f"s3://{BUCKET}/nul/{tag}/d.ttl"
    assert "\\x00" in log["errorMessage"] and "\x00" not in log["errorMessage"]


async def test_error_texts_are_made_storable(pool: asyncpg.Pool) -> None:
    load_id = str(uuid.uuid4())
    await pool.execute(
        """INSERT INTO graph_loads (id, source, bucket, prefix, format, mode, fail_on_error,
            parallelism, parser_configuration, update_single_cardinality, queue_request,
            edge_only_load, dependencies, region, iam_role_arn, status)
           VALUES ($1, 's3://b/p/', 'b', 'p/', 'ntriples', 'NEW', true, 'HIGH', '{}', false,
            false, false, '{}', 'us-east-1', 'arn', 'LOAD_IN_PROGRESS')""",
        load_id,
    )
    async with pool.acquire() as conn:
        await loads_store.add_error(
            conn, load_id, "PARSING_ERROR", "bad <\ud800> and \x00 here", "s3://b/\udcff", 7
        )
        (row,) = await loads_store.errors_page(conn, load_id, 0, 10)
    assert row.error_message == "bad <\\ud800> and \\x00 here"
    assert row.file_name == "s3://b/\\udcff"


# --------------------------------------------------------------------------- fast reset


async def summary(neptune: httpx.AsyncClient) -> dict[str, Any]:
    got = await neptune.get("/graph/summary")
    assert got.status_code == 200, got.text
    answer: dict[str, Any] = got.json()
    return answer


async def initiate(client: httpx.AsyncClient) -> str:
    got = await client.post("/system", json={"action": "initiateDatabaseReset"})
    assert got.status_code == 200, got.text
    assert got.json()["status"] == "200 OK"
    return str(uuid.UUID(got.json()["payload"]["token"]))


def refused(response: httpx.Response, status: int, code: str, message: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == code and error["requestId"], error
    if message is not None:
        assert error["detailedMessage"] == message, error
    return str(error["detailedMessage"])


@pytest.fixture
async def graph_with_data(platform: Platform, neptune: httpx.AsyncClient, s3: Any, tag: str) -> str:
    """Vertices, an edge and RDF statements loaded; the prefix of the Gremlin files."""
    prefix = f"reset/{tag}/"
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{prefix}v.csv",
        Body=f"~id,~label,born:Date\n{tag}-a,p,2015-11-22\n{tag}-b,p,2016-01-01\n".encode(),
    )
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{prefix}e.csv",
        Body=f"~id,~from,~to\n{tag}-e,{tag}-a,{tag}-b\n".encode(),
    )
    assert (await load(neptune, platform, prefix, "csv"))["overallStatus"]["status"] == (
        "LOAD_COMPLETED"
    )
    nt = f'<http://ex.org/{tag}> <http://ex.org/p> "o" .\n'.encode()
    s3.put_object(Bucket=BUCKET, Key=f"rdf-{prefix}d.nt", Body=nt)
    assert (await load(neptune, platform, f"rdf-{prefix}", "ntriples"))["overallStatus"][
        "status"
    ] == "LOAD_COMPLETED"
    return prefix


async def test_fast_reset_empties_the_graph_with_a_fresh_token(
    platform: Platform, neptune: httpx.AsyncClient, graph_with_data: str, tag: str
) -> None:
    before = await summary(neptune)
    assert before["vertices"] >= 2 and before["edges"] >= 1 and before["quads"] >= 1

    wrong = str(uuid.uuid4())
    refused(
        await neptune.post("/system", json={"action": "performDatabaseReset", "token": wrong}),
        400, "InvalidParameterException", MISMATCH.format(wrong),
    )  # fmt: skip
    first = await initiate(neptune)
    token = await initiate(neptune)  # only the latest token is valid
    refused(
        await neptune.post("/system", json={"action": "performDatabaseReset", "token": first}),
        400, "InvalidParameterException", MISMATCH.format(first),
    )  # fmt: skip
    assert (await summary(neptune))["vertices"] == before["vertices"]

    done = await neptune.post(  # URL-encoded, as Neptune also takes it
        "/system",
        content=f"action=performDatabaseReset&token={token}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200, done.text
    assert done.json() == {"status": "200 OK"}
    after = await summary(neptune)
    assert (after["vertices"], after["edges"], after["quads"], after["byLabel"]) == (
        0, 0, 0, {"vertices": {}, "edges": {}},
    )  # fmt: skip
    assert (await neptune.get(f"/graph/vertices/{tag}-a")).status_code == 404
    # The token is used up.
    refused(
        await neptune.post("/system", json={"action": "performDatabaseReset", "token": token}),
        400, "InvalidParameterException", MISMATCH.format(token),
    )  # fmt: skip
    # What the sources had loaded is forgotten with the data: the same source loads again
    # in full (AUTO, the default mode, would otherwise skip files it loaded before).
    again = await load(neptune, platform, graph_with_data, "csv")
    assert again["overallStatus"]["status"] == "LOAD_COMPLETED", again
    assert (await neptune.get(f"/graph/vertices/{tag}-a")).json()["properties"] == {
        "born": [g_date(1448150400000)]
    }


async def test_an_expired_token_is_refused(
    neptune: httpx.AsyncClient, stack_db: str, graph_with_data: str
) -> None:
    token = await initiate(neptune)
    conn = await asyncpg.connect(stack_db)
    try:  # issued 61 minutes ago
        await conn.execute(
            "UPDATE loadbay_loader.graph_reset_token SET issued_at = now() - interval '61 min'"
        )
    finally:
        await conn.close()
    message = refused(
        await neptune.post("/system", json={"action": "performDatabaseReset", "token": token}),
        400,
        "InvalidParameterException",
    )
    assert message.startswith(MISMATCH.format(token)) and "expired" in message
    assert (await summary(neptune))["vertices"] >= 2


async def test_only_the_graphs_users_may_reset(
    platform: Platform,
    settings: PlatformSettings,
    neptune: httpx.AsyncClient,
    ben: User,
    graph_with_data: str,
) -> None:
    outsider = make_user(settings, f"outsider_{uuid.uuid4().hex[:6]}")
    async with httpx.AsyncClient(
        base_url=platform.urls["loader"], headers=outsider.headers, timeout=30
    ) as stranger:
        for body in (
            {"action": "initiateDatabaseReset"},
            {"action": "performDatabaseReset", "token": await initiate(neptune)},
        ):
            message = refused(
                await stranger.post("/system", json=body), 403, "AccessDeniedException"
            )
            assert "reset the graph" in message
        anonymous = await stranger.post(
            "/system", json={"action": "initiateDatabaseReset"}, headers={"Authorization": ""}
        )
        assert anonymous.status_code == 401
    assert (await summary(neptune))["vertices"] >= 2
    # Another of the graph's users may use the token one of them was issued.
    token = await initiate(neptune)
    async with httpx.AsyncClient(
        base_url=platform.urls["loader"], headers=ben.headers, timeout=30
    ) as other:
        done = await other.post("/system", json={"action": "performDatabaseReset", "token": token})
    assert done.status_code == 200, done.text
    assert (await summary(neptune))["vertices"] == 0


async def test_system_requests_get_neptunes_errors(neptune: httpx.AsyncClient) -> None:
    refused(
        await neptune.post("/system", json={}),
        400, "MissingParameterException", "Missing required parameters: [action]",
    )  # fmt: skip
    refused(
        await neptune.post("/system", json={"action": "resetEverything"}),
        400,
        "InvalidParameterException",
        "System command parameter 'action' has unsupported value 'resetEverything'",
    )
    refused(
        await neptune.post(
            "/system",
            content=b'{"action": "initiateDatabaseReset", "action": "performDatabaseReset"}',
            headers={"Content-Type": "application/json"},
        ),
        400, "InvalidParameterException", "Duplicate field 'action'",
    )  # fmt: skip
    refused(
        await neptune.post(
            "/system",
            content=b"action=initiateDatabaseReset&action=performDatabaseReset",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        400, "InvalidParameterException", "Too many values supplied for: action",
    )  # fmt: skip
    refused(
        await neptune.post("/system", json={"action": "performDatabaseReset"}),
        400, "InvalidParameterException", MISMATCH.format(""),
    )  # fmt: skip


async def test_a_reset_is_refused_while_a_load_runs(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, stack_db: str, tag: str
) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"busy/{tag}/v.csv", Body=f"~id,~label\n{tag}-v,p\n".encode())
    token = await initiate(neptune)
    # Hold the vertex table, so the load stays LOAD_IN_PROGRESS for as long as the test needs.
    holder = await asyncpg.connect(stack_db)
    try:
        lock = holder.transaction()
        await lock.start()
        await holder.execute("LOCK TABLE loadbay_loader.graph_vertices IN ACCESS EXCLUSIVE MODE")
        started = await neptune.post("/loader", json=request(platform, f"busy/{tag}/", "csv"))
        load_id = started.json()["payload"]["loadId"]

        async def running() -> bool:
            got = await neptune.get(f"/loader/{load_id}")
            return bool(got.json()["payload"]["overallStatus"]["status"] == "LOAD_IN_PROGRESS")

        await eventually(running, within=60)
        message = refused(
            await neptune.post("/system", json={"action": "performDatabaseReset", "token": token}),
            400,
            "PreconditionsFailedException",
        )
        assert load_id in message
        await lock.rollback()
    finally:
        await holder.close()

    async def completed() -> bool:
        got = await neptune.get(f"/loader/{load_id}")
        return bool(got.json()["payload"]["overallStatus"]["status"] == "LOAD_COMPLETED")

    await eventually(completed, within=60)
    assert (await neptune.get(f"/graph/vertices/{tag}-v")).status_code == 200
    # The refused reset left the token valid.
    done = await neptune.post("/system", json={"action": "performDatabaseReset", "token": token})
    assert done.status_code == 200, done.text
    assert (await neptune.get(f"/graph/vertices/{tag}-v")).status_code == 404


async def test_a_reset_empties_every_graph_table_and_keeps_the_load_history(
    pool: asyncpg.Pool,
) -> None:
    # A new table of the graph must be named in GRAPH_TABLES (emptied) or KEPT_TABLES.
    names = {
        row["tablename"]
        for row in await pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'loadbay_loader'"
            " AND (tablename LIKE 'graph%' OR tablename = 'quads')"
        )
    }
    assert names == set(GRAPH_TABLES) | set(KEPT_TABLES)
