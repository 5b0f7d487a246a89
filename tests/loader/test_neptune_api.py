"""The bulk loader API as a Neptune client script sees it, on real servers."""

from __future__ import annotations

import asyncio
import bz2
import gzip
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from loadbay_loader.settings import LoaderSettings
from tests.conftest import Mailbox, Platform, User, body_text, eventually

ROLE = "arn:aws:iam::123456789012:role/NeptuneLoadFromS3"
TERMINAL = {
    "LOAD_COMPLETED", "LOAD_FAILED", "LOAD_CANCELLED_BY_USER", "LOAD_UNEXPECTED_ERROR",
    "LOAD_FAILED_BECAUSE_DEPENDENCY_NOT_SATISFIED", "LOAD_CANCELLED_DUE_TO_ERRORS",
    "LOAD_FAILED_INVALID_REQUEST", "LOAD_S3_READ_ERROR", "LOAD_S3_ACCESS_DENIED_ERROR",
}  # fmt: skip


@pytest.fixture
async def neptune(platform: Platform, ann: User) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=platform.urls["loader"], headers=ann.headers, timeout=30
    ) as client:
        yield client


SOURCE_BUCKET = "graph-sources"  # not the LZ: the reload service watches that one


@pytest.fixture(scope="session")
def source_bucket(s3: Any) -> str:
    s3.create_bucket(Bucket=SOURCE_BUCKET)
    return SOURCE_BUCKET


@pytest.fixture
def tag(source_bucket: str) -> str:
    return uuid.uuid4().hex[:8]


def request_body(platform: Platform, prefix: str, fmt: str = "csv", **extra: Any) -> dict[str, Any]:
    return {
        "source": f"s3://{SOURCE_BUCKET}/{prefix}",
        "format": fmt,
        "iamRoleArn": ROLE,
        "region": platform.settings.s3.region,
        **extra,
    }


def put(s3: Any, platform: Platform, key: str, body: bytes) -> None:
    s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=body)


async def start(neptune: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await neptune.post("/loader", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "200 OK"
    return str(response.json()["payload"]["loadId"])


async def status(neptune: httpx.AsyncClient, load_id: str, **params: str) -> dict[str, Any]:
    response = await neptune.get(f"/loader/{load_id}", params=params)
    assert response.status_code == 200, response.text
    return response.json()["payload"]  # type: ignore[no-any-return]


async def finished(neptune: httpx.AsyncClient, load_id: str, **params: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        payload = await status(neptune, load_id, **params)
        return payload if payload["overallStatus"]["status"] in TERMINAL else None

    return await eventually(done, within=60)


def vertices(tag: str) -> bytes:
    return (
        "~id,~label,name:String,age:Int,nicknames:String[]\n"
        f'{tag}-v1,person,marko,29,"mk;marco"\n'
        f"{tag}-v2,person;employee,vadas,27,\n"
    ).encode()


def edges(tag: str) -> bytes:
    return f"~id,~from,~to,~label,weight:Double\n{tag}-e1,{tag}-v1,{tag}-v2,knows,0.5\n".encode()


class GraphLock:
    """Holds the graph's vertex table locked, so a running load waits for as long as a test
    needs it to stay running."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> GraphLock:
        self.conn = await asyncpg.connect(self.url)
        self.tx = self.conn.transaction()
        await self.tx.start()
        await self.conn.execute("LOCK TABLE loadbay_loader.graph_vertices IN ACCESS EXCLUSIVE MODE")
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.tx.rollback()
        await self.conn.close()


async def test_a_gremlin_load_end_to_end(
    platform: Platform,
    neptune: httpx.AsyncClient,
    s3: Any,
    tag: str,
    ann: User,
    mail: Mailbox,
) -> None:
    # Edge file first in listing order: the loader still loads vertices first.
    put(s3, platform, f"g/{tag}/a_edges.csv", edges(tag))
    put(s3, platform, f"g/{tag}/b_vertices.csv", vertices(tag))
    load_id = await start(neptune, request_body(platform, f"g/{tag}/"))

    payload = await finished(neptune, load_id, details="TRUE", errors="TRUE")
    overall = payload["overallStatus"]
    assert overall["status"] == "LOAD_COMPLETED", payload
    assert overall["fullUri"] == f"s3://{SOURCE_BUCKET}/g/{tag}/"
    assert overall["runNumber"] == 1 and overall["retryNumber"] == 0
    assert overall["startTime"] > 0 and overall["totalTimeSpent"] >= 0
    assert overall["parsingErrors"] == overall["datatypeMismatchErrors"] == 0
    assert overall["insertErrors"] == 0
    # one record per label or property value, not per line
    assert overall["totalRecords"] > 3
    assert payload["feedCount"] == [{"LOAD_COMPLETED": 2}]
    assert payload["failedFeeds"] == []
    assert payload["errors"]["errorLogs"] == []

    vertex = (await neptune.get(f"/graph/vertices/{tag}-v2")).json()
    assert sorted(vertex["labels"]) == ["employee", "person"]
    edge = (await neptune.get(f"/graph/edges/{tag}-e1")).json()
    assert edge["label"] == "knows"
    assert (await neptune.get(f"/graph/vertices/{tag}-nope")).status_code == 404

    same = await neptune.get("/loader", params={"loadId": load_id})
    assert same.json()["payload"]["overallStatus"]["status"] == "LOAD_COMPLETED"
    ids = (await neptune.get("/loader")).json()["payload"]["loadIds"]
    assert ids[0] == load_id
    (email,) = await mail.wait_for(ann.email)  # whoever asked is told how it ended
    assert "Graph load" in email["Subject"] and load_id in body_text(email)


@pytest.mark.parametrize(
    ("fmt", "body", "name"),
    [
        ("ntriples", b'<http://ex.org/{tag}> <http://ex.org/p> "o" .\n', "d.nt"),
        ("nquads", b'<http://ex.org/{tag}> <http://ex.org/p> "o" <http://ex.org/g> .\n', "d.nq"),
        ("turtle", b'@prefix ex: <http://ex.org/> . ex:{tag} ex:p "o" .\n', "d.ttl"),
        (
            "rdfxml",
            b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
            b' xmlns:ex="http://ex.org/"><rdf:Description rdf:about="http://ex.org/{tag}">'
            b"<ex:p>o</ex:p></rdf:Description></rdf:RDF>",
            "d.rdf",
        ),
    ],
)
async def test_rdf_formats_load_and_read_back(
    platform: Platform,
    neptune: httpx.AsyncClient,
    s3: Any,
    tag: str,
    fmt: str,
    body: bytes,
    name: str,
) -> None:
    put(s3, platform, f"rdf/{tag}/{name}", body.replace(b"{tag}", tag.encode()))
    load_id = await start(neptune, request_body(platform, f"rdf/{tag}/", fmt))
    overall = (await finished(neptune, load_id))["overallStatus"]
    assert overall["status"] == "LOAD_COMPLETED" and overall["totalRecords"] == 1
    found = await neptune.get("/rdf/statements", params={"subject": f"<http://ex.org/{tag}>"})
    (statement,) = found.json()["statements"]
    assert '"o"' in str(statement)


async def test_compressed_feeds_and_opencypher(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, tag: str
) -> None:
    nodes = f":ID,name:String,:LABEL\n{tag}-a,Ann,person\n{tag}-b,Bo,person\n".encode()
    rels = f":ID,:START_ID,:END_ID,:TYPE,since:Int\n{tag}-r,{tag}-a,{tag}-b,KNOWS,2001\n"
    put(s3, platform, f"oc/{tag}/nodes.csv.gz", gzip.compress(nodes))
    put(s3, platform, f"oc/{tag}/rels.csv.bz2", bz2.compress(rels.encode()))
    load_id = await start(neptune, request_body(platform, f"oc/{tag}/", "opencypher"))
    payload = await finished(neptune, load_id, errors="TRUE")
    assert payload["overallStatus"]["status"] == "LOAD_COMPLETED", payload
    edge = (await neptune.get(f"/graph/edges/{tag}-r")).json()
    assert edge["label"] == "KNOWS"


async def test_malformed_files_fail_with_parsing_errors_naming_file_and_record(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, tag: str
) -> None:
    bad = f'~id,~label,age:Int\n{tag}-x1,person,3\n{tag}-x2,person,"unterminated\n'.encode()
    put(s3, platform, f"bad/{tag}/v.csv", bad)
    load_id = await start(neptune, request_body(platform, f"bad/{tag}/"))
    payload = await finished(neptune, load_id, errors="TRUE", details="TRUE")
    assert payload["overallStatus"]["status"] == "LOAD_FAILED"
    assert payload["overallStatus"]["parsingErrors"] >= 1
    log = payload["errors"]["errorLogs"][0]
    assert log["errorCode"] == "PARSING_ERROR"
    assert log["fileName"].endswith(f"bad/{tag}/v.csv")
    assert log["recordNum"] > 0
    assert payload["failedFeeds"][0]["status"] == "LOAD_FAILED"

    put(s3, platform, f"badttl/{tag}/x.ttl", b"@prefix ex: <http://ex.org/> . ex:a ex:b \n")
    ttl = await start(neptune, request_body(platform, f"badttl/{tag}/", "turtle"))
    logs = (await finished(neptune, ttl, errors="TRUE"))["errors"]["errorLogs"]
    assert logs[0]["errorCode"] == "PARSING_ERROR" and logs[0]["fileName"].endswith("x.ttl")


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"source": None}, "MissingParameterException", "source"),
        ({"format": None}, "MissingParameterException", "format"),
        ({"iamRoleArn": None}, "MissingParameterException", "iamRoleArn"),
        ({"region": None}, "MissingParameterException", "region"),
        ({"format": "parquet"}, "InvalidParameterException", "parquet"),
        ({"mode": "SOMETIMES"}, "InvalidParameterException", "mode"),
        ({"parallelism": "MAX"}, "InvalidParameterException", "parallelism"),
        ({"failOnError": "maybe"}, "InvalidParameterException", "failOnError"),
        ({"queueRequest": 3}, "InvalidParameterException", "queueRequest"),
        ({"iamRoleArn": "my-role"}, "InvalidParameterException", "iamRoleArn"),
        ({"region": "mars-1"}, "InvalidParameterException", "region"),
        ({"region": "eu-west-1"}, "BadRequestException", "Region"),
        ({"source": "ftp://x/y"}, "InvalidParameterException", "source"),
        ({"source": "s3://no-such-bucket-here/x"}, "LoadUrlAccessDeniedException",
         "LOADBAY_LOADER_READABLE_SOURCES"),
        ({"source": "s3://graph-sources-never-created/x"}, "S3Exception", "bucket not found"),
        ({"source": "s3://{lz}/nothing/here/"}, "S3Exception", "does not exist"),
        ({"parserConfiguration": {"colour": "red"}}, "InvalidParameterException", "colour"),
        ({"bogus": 1}, "InvalidParameterException", "bogus"),
        ({"dependencies": ["00000000-0000-0000-0000-000000000000"]}, "BadRequestException",
         "not found"),
    ],
)  # fmt: skip
async def test_bad_requests_get_neptunes_errors(
    platform: Platform,
    neptune: httpx.AsyncClient,
    s3: Any,
    tag: str,
    change: dict[str, Any],
    code: str,
    words: str,
) -> None:
    put(s3, platform, f"ok/{tag}/v.csv", vertices(tag))
    body = request_body(platform, f"ok/{tag}/")
    for key, value in change.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value.replace("{lz}", SOURCE_BUCKET) if isinstance(value, str) else value
    response = await neptune.post("/loader", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == code and words in error["detailedMessage"], error
    assert error["requestId"]


async def test_request_forms_status_errors_and_auth(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, tag: str
) -> None:
    put(s3, platform, f"forms/{tag}/v.csv", vertices(tag))
    body = request_body(platform, f"forms/{tag}/", failOnError=False, queueRequest="TRUE",
                        mode="new", parallelism="low")  # fmt: skip
    load_id = await start(neptune, body)
    await finished(neptune, load_id)
    encoded = await neptune.post(
        "/loader", data={**request_body(platform, f"forms/{tag}/"), "mode": "NEW"}
    )
    assert encoded.status_code == 200, encoded.text
    await finished(neptune, encoded.json()["payload"]["loadId"])

    missing = await neptune.get(f"/loader/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "BulkLoadIdNotFoundException"
    assert (await neptune.get("/loader", params={"limit": "101"})).status_code == 400
    assert (await neptune.post("/loader", content=b"not json")).json()["code"] == (
        "BadRequestException"
    )
    assert (await neptune.delete(f"/loader/{load_id}")).status_code == 404  # not active
    async with httpx.AsyncClient(base_url=platform.urls["loader"]) as anonymous:
        refused = await anonymous.get("/loader")
        assert refused.status_code == 401
        assert refused.json()["code"] == "AccessDeniedException"
        assert refused.headers["www-authenticate"] == "Bearer"


async def test_without_authentication_an_unchanged_script_works(
    platform: Platform, s3: Any, tag: str
) -> None:
    from loadbay_loader.graph import routes as graph_routes
    from loadbay_platform.http import create_app

    async def ready() -> None:
        return None

    res = platform.running["loader"].resources
    assert res is not None
    app = create_app("loader", res.settings.auth, ready, title="t", description="d")
    open_loader = LoaderSettings(neptune_auth=False, readable_sources=[f"s3://{SOURCE_BUCKET}/"])
    graph_routes.install(app, res, open_loader)
    put(s3, platform, f"open/{tag}/v.csv", vertices(tag))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://neptune") as client:
        response = await client.post("/loader", json=request_body(platform, f"open/{tag}/"))
        assert response.status_code == 200, response.text
        assert (await client.get("/loader")).json()["status"] == "200 OK"
        await finished(client, response.json()["payload"]["loadId"])


async def test_queue_limits_dependencies_and_cancel(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, tag: str, stack_db: str
) -> None:
    put(s3, platform, f"q/{tag}/v.csv", vertices(tag))
    put(s3, platform, f"q/{tag}-bad/v.csv", f"~id,age:Int\n{tag}-z,notanumber\n".encode())
    ok = request_body(platform, f"q/{tag}/", mode="NEW")
    async with GraphLock(stack_db):
        running = await start(neptune, ok)

        async def in_progress() -> bool:
            got = await status(neptune, running)
            return got["overallStatus"]["status"] == "LOAD_IN_PROGRESS"

        await eventually(in_progress)
        refused = await neptune.post("/loader", json=ok)
        assert refused.status_code == 400
        assert "Max concurrent load limit breached" in refused.json()["detailedMessage"]

        failing = await start(
            neptune, request_body(platform, f"q/{tag}-bad/", queueRequest="TRUE", mode="NEW")
        )
        child = await start(neptune, {**ok, "queueRequest": "TRUE", "dependencies": [failing]})
        grandchild = await start(neptune, {**ok, "queueRequest": True, "dependencies": [child]})
        fillers = [await start(neptune, {**ok, "queueRequest": "TRUE"}) for _ in range(61)]
        full = await neptune.post("/loader", json={**ok, "queueRequest": "TRUE"})
        assert full.status_code == 400
        assert (
            "Max load task queue size limit breached. Limit is 64"
            in (full.json()["detailedMessage"])
        )
        assert (await status(neptune, fillers[0]))["overallStatus"]["status"] == "LOAD_IN_QUEUE"
        listed = (await neptune.get("/loader", params={"limit": "100"})).json()["payload"]
        assert listed["loadIds"][0] == fillers[-1]  # queued first, most recent first
        hidden = await neptune.get("/loader", params={"includeQueuedLoads": "FALSE"})
        assert fillers[-1] not in hidden.json()["payload"]["loadIds"]

        for load_id in fillers:
            assert (await neptune.delete(f"/loader/{load_id}")).status_code == 200
        assert (await neptune.delete("/loader", params={"loadId": running})).status_code == 200
    assert (await finished(neptune, running))["overallStatus"]["status"] == (
        "LOAD_CANCELLED_BY_USER"
    )
    assert (await finished(neptune, fillers[0]))["overallStatus"]["status"] == (
        "LOAD_CANCELLED_BY_USER"
    )
    assert (await finished(neptune, failing))["overallStatus"]["status"] == "LOAD_FAILED"
    for dependent in (child, grandchild):
        assert (await finished(neptune, dependent))["overallStatus"]["status"] == (
            "LOAD_FAILED_BECAUSE_DEPENDENCY_NOT_SATISFIED"
        )


async def test_resume_loads_only_what_failed_and_new_loads_everything(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, tag: str
) -> None:
    prefix = f"resume/{tag}/"
    put(s3, platform, prefix + "good.csv", vertices(tag))
    put(s3, platform, prefix + "bad.csv", f"~id,age:Int\n{tag}-r1,old\n".encode())
    first = await start(neptune, request_body(platform, prefix, failOnError="FALSE"))
    payload = await finished(neptune, first)
    assert payload["overallStatus"]["status"] == "LOAD_FAILED"
    assert {"LOAD_COMPLETED": 1} in payload["feedCount"]

    put(s3, platform, prefix + "bad.csv", f"~id,age:Int\n{tag}-r1,42\n".encode())
    resumed = await start(neptune, request_body(platform, prefix, mode="RESUME"))
    payload = await finished(neptune, resumed, details="TRUE")
    assert payload["overallStatus"]["status"] == "LOAD_COMPLETED", payload
    assert payload["feedCount"] == [{"LOAD_COMPLETED": 1}]  # only the fixed file

    again = await start(neptune, request_body(platform, prefix, mode="AUTO"))
    assert (await finished(neptune, again))["feedCount"] == []  # nothing left to load
    everything = await start(neptune, request_body(platform, prefix, mode="NEW"))
    payload = await finished(neptune, everything)
    assert payload["feedCount"] == [{"LOAD_COMPLETED": 2}]
    assert payload["overallStatus"]["totalDuplicates"] > 0

    never = await start(neptune, request_body(platform, f"resume/{tag}/good", mode="RESUME"))
    assert (await finished(neptune, never))["overallStatus"]["status"] == "LOAD_FAILED"


async def test_a_load_interrupted_by_a_restart_is_picked_up_again(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, tag: str, stack_db: str
) -> None:
    put(s3, platform, f"crash/{tag}/v.csv", vertices(tag))
    load_id = str(uuid.uuid4())
    conn = await asyncpg.connect(stack_db)
    try:
        # What a loader that died mid-load leaves behind: a load and a feed "in progress".
        await conn.execute(
            """INSERT INTO loadbay_loader.graph_loads (id, source, bucket, prefix, format, mode,
                fail_on_error, parallelism, parser_configuration, update_single_cardinality,
                queue_request, edge_only_load, dependencies, region, iam_role_arn, status,
                start_time)
               VALUES ($1, $2, $3, $4, 'csv', 'NEW', true, 'HIGH', '{}', false, false, false,
                '{}', $5, $6, 'LOAD_IN_PROGRESS', now())""",
            load_id, f"s3://{SOURCE_BUCKET}/crash/{tag}/",
            SOURCE_BUCKET, f"crash/{tag}/", platform.settings.s3.region, ROLE,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO loadbay_loader.graph_load_feeds (load_id, uri, kind, position, status)"
            " VALUES ($1, $2, 'vertex', 0, 'LOAD_IN_PROGRESS')",
            load_id, f"s3://{SOURCE_BUCKET}/crash/{tag}/v.csv",
        )  # fmt: skip
        await conn.execute("SELECT pg_notify('loadbay_loader_jobs', $1)", load_id)
    finally:
        await conn.close()
    payload = await finished(neptune, load_id)
    assert payload["overallStatus"]["status"] == "LOAD_COMPLETED", payload
    assert payload["overallStatus"]["runNumber"] == 2
    assert (await neptune.get(f"/graph/vertices/{tag}-v1")).status_code == 200


async def test_the_air_routes_graph_loads_completely(
    platform: Platform, neptune: httpx.AsyncClient, s3: Any, tag: str
) -> None:
    from tests.conftest import DATA

    folder = DATA / "air-routes-1.0-gremlin"
    for name in ("air-routes-latest-edges.csv", "air-routes-latest-nodes.csv"):
        put(s3, platform, f"air/{tag}/{name}", (folder / name).read_bytes())
    load_id = await start(neptune, request_body(platform, f"air/{tag}/", parallelism="MEDIUM"))
    payload = await finished(neptune, load_id, errors="TRUE")
    assert payload["overallStatus"]["status"] == "LOAD_COMPLETED", payload["errors"]
    summary = (await neptune.get("/graph/summary")).json()["byLabel"]
    vertices_by_label = summary["vertices"]
    edges_by_label = summary["edges"]
    assert sum(vertices_by_label.get(k, 0) for k in ("airport", "country", "continent",
                                                     "version")) == 3749  # fmt: skip
    assert edges_by_label.get("route", 0) + edges_by_label.get("contains", 0) == 57645
    await asyncio.sleep(0)
