"""Who may use the bulk loader, and what it may read, on real servers: ann and ben are the
graph's users (tests/conftest.py lists them), alice and bob are not."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from botocore.exceptions import ClientError

from loadbay_loader.graph import routes as graph_routes
from loadbay_loader.settings import LoaderSettings
from loadbay_platform.auth import mint_token
from loadbay_platform.http import create_app
from tests.conftest import Platform, StackInfo, User, eventually
from tests.loader.test_neptune_api import (
    ROLE,
    SOURCE_BUCKET,
    GraphLock,
    finished,
    request_body,
    start,
    status,
    vertices,
)

UPLOAD_DATE = "upload_date=1700000000"
Client = Callable[[User], httpx.AsyncClient]


@pytest.fixture
async def api(platform: Platform) -> AsyncIterator[Client]:
    """A client of the session's loader for a user."""
    opened: list[httpx.AsyncClient] = []

    def client(user: User) -> httpx.AsyncClient:
        opened.append(
            httpx.AsyncClient(base_url=platform.urls["loader"], headers=user.headers, timeout=30)
        )
        return opened[-1]

    yield client
    for each in opened:
        await each.aclose()


@pytest.fixture
def tag(s3: Any) -> str:
    with contextlib.suppress(ClientError):
        s3.create_bucket(Bucket=SOURCE_BUCKET)
    return uuid.uuid4().hex[:8]


@contextlib.asynccontextmanager
async def loader_with(
    platform: Platform, settings: LoaderSettings, user: User | None
) -> AsyncIterator[httpx.AsyncClient]:
    """The loader's API with other settings, in process, on the session's resources."""

    async def ready() -> None:
        return None

    res = platform.running["loader"].resources
    assert res is not None
    app = create_app("loader", res.settings.auth, ready, title="t", description="d")
    graph_routes.install(app, res, settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://neptune",
        headers=user.headers if user else {},
    ) as client:
        yield client


def refused(response: httpx.Response, status_code: int, code: str, *words: str) -> str:
    assert response.status_code == status_code, response.text
    error = response.json()
    assert error["code"] == code and error["requestId"], error
    for word in words:
        assert word in error["detailedMessage"], error
    return str(error["detailedMessage"])


async def test_only_the_graphs_users_start_loads_and_read_the_graph(
    platform: Platform, api: Client, s3: Any, tag: str, ann: User, alice: User
) -> None:
    s3.put_object(Bucket=SOURCE_BUCKET, Key=f"acl/{tag}/v.csv", Body=vertices(tag))
    outsider = api(alice)
    attempt = await outsider.post("/loader", json=request_body(platform, f"acl/{tag}/"))
    refused(attempt, 403, "AccessDeniedException", alice.user_id, "LOADBAY_LOADER_GRAPH_USERS")

    load_id = await start(api(ann), request_body(platform, f"acl/{tag}/"))
    assert (await finished(api(ann), load_id))["overallStatus"]["status"] == "LOAD_COMPLETED"
    assert (await api(ann).get(f"/graph/vertices/{tag}-v1")).status_code == 200
    for path, params in [
        (f"/graph/vertices/{tag}-v1", {}),
        (f"/graph/edges/{tag}-e1", {}),
        ("/graph/summary", {}),
        ("/rdf/statements", {"subject": f"<http://ex.org/{tag}>"}),
    ]:
        read = await outsider.get(path, params=params)
        refused(read, 403, "AccessDeniedException", "read the graph")
        assert "marko" not in read.text


async def insert_load_of(stack_db: str, user_id: str, source: str) -> str:
    """A finished load in the history that `user_id` started (when they were a graph user)."""
    load_id = str(uuid.uuid4())
    conn = await asyncpg.connect(stack_db)
    try:
        await conn.execute(
            """INSERT INTO loadbay_loader.graph_loads (id, source, bucket, prefix, format, mode,
                fail_on_error, parallelism, parser_configuration, update_single_cardinality,
                queue_request, edge_only_load, dependencies, region, iam_role_arn, status,
                requested_by, finished_at)
               VALUES ($1, $2, 'b', 'p/', 'csv', 'NEW', true, 'HIGH', '{}', false, false, false,
                '{}', 'us-east-1', $3, 'LOAD_COMPLETED', $4, now())""",
            load_id, source, ROLE, user_id,
        )  # fmt: skip
    finally:
        await conn.close()
    return load_id


async def test_a_load_shows_to_its_requester_and_the_graphs_users_only(
    platform: Platform,
    api: Client,
    s3: Any,
    tag: str,
    ann: User,
    ben: User,
    alice: User,
    bob: User,
    stack_db: str,
) -> None:
    secret = f"{tag}-salary-123456"
    bad = f"~id,~label,age:Int\n{tag}-s1,person,{secret}\n".encode()
    s3.put_object(Bucket=SOURCE_BUCKET, Key=f"acl-err/{tag}/v.csv", Body=bad)
    load_id = await start(api(ann), request_body(platform, f"acl-err/{tag}/", failOnError=False))
    payload = await finished(api(ann), load_id, errors="TRUE")
    assert secret in str(payload["errors"]["errorLogs"])  # the requester sees the rows

    seen_by_ben = await status(api(ben), load_id, errors="TRUE")
    assert secret in str(seen_by_ben["errors"]["errorLogs"])
    assert load_id in (await api(ben).get("/loader")).json()["payload"]["loadIds"]
    outsider = api(alice)
    for response in (
        await outsider.get(f"/loader/{load_id}", params={"errors": "TRUE", "details": "TRUE"}),
        await outsider.get("/loader", params={"loadId": load_id, "errors": "TRUE"}),
        await outsider.delete(f"/loader/{load_id}"),
        await outsider.delete("/loader", params={"loadId": load_id}),
    ):
        refused(response, 404, "BulkLoadIdNotFoundException", load_id)
        assert secret not in response.text
    listed = await outsider.get("/loader", params={"includeQueuedLoads": "TRUE"})
    assert listed.status_code == 200 and load_id not in listed.json()["payload"]["loadIds"]

    # alice's own load (from when she was one of the graph's users) stays hers to see.
    own = await insert_load_of(stack_db, alice.user_id, f"s3://{SOURCE_BUCKET}/old/{tag}/")
    assert (await outsider.get("/loader")).json()["payload"]["loadIds"] == [own]
    assert (await status(outsider, own))["overallStatus"]["status"] == "LOAD_COMPLETED"
    assert (await status(api(ben), own))["overallStatus"]["status"] == "LOAD_COMPLETED"
    refused(await api(bob).get(f"/loader/{own}"), 404, "BulkLoadIdNotFoundException")
    assert (await api(bob).get("/loader")).json()["payload"]["loadIds"] == []


async def test_only_the_requester_cancels_a_load(
    platform: Platform, api: Client, s3: Any, tag: str, ann: User, ben: User, alice: User,
    stack_db: str,
) -> None:  # fmt: skip
    s3.put_object(Bucket=SOURCE_BUCKET, Key=f"acl-cancel/{tag}/v.csv", Body=vertices(tag))
    async with GraphLock(stack_db):
        load_id = await start(api(ann), request_body(platform, f"acl-cancel/{tag}/", mode="NEW"))

        async def in_progress() -> bool:
            got = await status(api(ann), load_id)
            return got["overallStatus"]["status"] == "LOAD_IN_PROGRESS"

        await eventually(in_progress)
        refused(await api(ben).delete(f"/loader/{load_id}"), 403, "AccessDeniedException",
                "Only the user who started")  # fmt: skip
        refused(
            await api(ben).delete("/loader", params={"loadId": load_id}),
            403,
            "AccessDeniedException",
        )
        refused(await api(alice).delete(f"/loader/{load_id}"), 404, "BulkLoadIdNotFoundException")
        assert (await status(api(ann), load_id))["overallStatus"]["status"] == "LOAD_IN_PROGRESS"
        assert (await api(ann).delete(f"/loader/{load_id}")).status_code == 200
    payload = await finished(api(ann), load_id)
    assert payload["overallStatus"]["status"] == "LOAD_CANCELLED_BY_USER"


async def test_the_landing_zone_is_readable_only_under_the_callers_own_folder(
    platform: Platform, api: Client, s3: Any, tag: str, ann: User, ben: User
) -> None:
    lz = platform.settings.s3.lz_bucket
    ben_folder = f"g_{tag}/people/{UPLOAD_DATE}/{ben.user_id}/"
    secret = f"{tag}-ben-private-row"
    s3.put_object(Bucket=lz, Key=f"{ben_folder}csv/v.csv", Body=f"<{secret}> x\n".encode())
    own = f"g_{tag}/people/{UPLOAD_DATE}/{ann.user_id}/"
    for source in (
        f"s3://{lz}/{ben_folder}",
        f"s3://{lz}/{ben_folder}csv/v.csv",
        f"https://s3.amazonaws.com/{lz}/{ben_folder}",
        f"s3://{lz}/g_{tag}/people/",
        f"s3://{lz}/g_{tag}/people/{UPLOAD_DATE}/",
        f"s3://{lz}/g_{tag}/people/{UPLOAD_DATE}/{ann.user_id[:-1]}",  # also lists ann2/...
        f"s3://{lz}/g_{tag}/people/{UPLOAD_DATE}/{ann.user_id}",  # and ann_x/...
        f"s3://{lz}/{own}../{ben.user_id}/",
        f"s3://{lz}/g_{tag}/people/upload_date=soon/{ann.user_id}/",
        f"s3://{lz}//people/{UPLOAD_DATE}/{ann.user_id}/",
        f"s3://{lz}/",
    ):
        body = {**request_body(platform, ""), "source": source, "format": "ntriples"}
        response = await api(ann).post("/loader", json=body)
        refused(response, 400, "LoadUrlAccessDeniedException", "your own folder",
                f"upload_date=<epoch>/{ann.user_id}/")  # fmt: skip
        assert secret not in response.text

    s3.put_object(Bucket=lz, Key=f"{own}csv/v.csv", Body=vertices(tag))
    for prefix in (own, f"{own}csv/"):
        body = {**request_body(platform, "", mode="NEW"), "source": f"s3://{lz}/{prefix}"}
        load_id = await start(api(ann), body)
        payload = await finished(api(ann), load_id)
        assert payload["overallStatus"]["status"] == "LOAD_COMPLETED", payload
    assert (await api(ann).get(f"/graph/vertices/{tag}-v1")).status_code == 200


async def test_the_dlz_and_buckets_no_operator_listed_are_refused(
    platform: Platform, api: Client, s3: Any, tag: str, ann: User
) -> None:
    dlz = platform.settings.s3.dlz_bucket
    s3.put_object(Bucket=dlz, Key=f"published/{tag}/v.csv", Body=vertices(tag))
    other = f"graph-sources-{tag}"  # reachable with the loader's keys, and not listed
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=other, Key="v.csv", Body=vertices(tag))
    cases = [
        (f"s3://{dlz}/published/{tag}/", "the data lake zone bucket"),
        (f"s3://{dlz}/", "the data lake zone bucket"),
        (f"s3://{other}/", f"s3://{other}/"),
        (f"s3://{other}/v.csv", f"s3://{other}/v.csv"),
    ]
    for source, words in cases:
        body = {**request_body(platform, ""), "source": source}
        response = await api(ann).post("/loader", json=body)
        refused(response, 400, "LoadUrlAccessDeniedException", words,
                "LOADBAY_LOADER_READABLE_SOURCES", f"s3://{SOURCE_BUCKET}/")  # fmt: skip

    # An operator may list a DLZ prefix, and then only that prefix is readable.
    listed = LoaderSettings(
        graph_users=[ann.user_id], readable_sources=[f"s3://{dlz}/published/{tag}/"]
    )
    async with loader_with(platform, listed, ann) as client:
        elsewhere = {**request_body(platform, ""), "source": f"s3://{dlz}/published/"}
        refused(await client.post("/loader", json=elsewhere), 400, "LoadUrlAccessDeniedException")
        body = {**request_body(platform, "", mode="NEW"), "source": f"s3://{dlz}/published/{tag}/"}
        load_id = await start(client, body)
        assert (await finished(client, load_id))["overallStatus"]["status"] == "LOAD_COMPLETED"


async def test_without_authentication_the_lz_and_dlz_are_not_readable(
    platform: Platform, s3: Any, tag: str
) -> None:
    lz, dlz = platform.settings.s3.lz_bucket, platform.settings.s3.dlz_bucket
    s3.put_object(Bucket=dlz, Key=f"open/{tag}/v.csv", Body=vertices(tag))
    open_loader = LoaderSettings(neptune_auth=False, readable_sources=[f"s3://{dlz}/"])
    async with loader_with(platform, open_loader, None) as client:
        for source in (f"s3://{lz}/g/ds/{UPLOAD_DATE}/dev/", f"s3://{dlz}/open/{tag}/"):
            body = {**request_body(platform, ""), "source": source}
            refused(await client.post("/loader", json=body), 400, "LoadUrlAccessDeniedException",
                    "without authentication")  # fmt: skip
        assert (await client.get("/loader")).status_code == 200  # no users: all else is open


async def test_the_openapi_document_declares_bearer_auth_and_neptunes_errors(
    platform: Platform,
) -> None:
    async with httpx.AsyncClient(base_url=platform.urls["loader"]) as client:
        spec = (await client.get("/openapi.json")).json()
    scheme = spec["components"]["securitySchemes"]["HTTPBearer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    error = spec["components"]["schemas"]["NeptuneErrorBody"]
    assert set(error["required"]) == {"code", "requestId", "detailedMessage"}
    ref = {"$ref": "#/components/schemas/NeptuneErrorBody"}
    expected = {
        ("/loader", "post"): {"400", "401", "403", "413", "500"},
        ("/loader", "get"): {"400", "401", "404", "500"},
        ("/loader/{load_id}", "get"): {"400", "401", "404", "500"},
        ("/loader/{load_id}", "delete"): {"401", "403", "404", "500"},
        ("/graph/vertices/{vertex_id}", "get"): {"400", "401", "403", "404", "500"},
        ("/graph/summary", "get"): {"401", "403", "500"},
        ("/rdf/statements", "get"): {"400", "401", "403", "500"},
    }
    for (path, method), statuses in expected.items():
        operation = spec["paths"][path][method]
        assert operation["security"] == [{"HTTPBearer": []}], (path, method)
        responses = operation["responses"]
        assert statuses <= set(responses), (path, method, sorted(responses))
        for code in statuses:
            assert responses[code]["content"]["application/json"]["schema"] == ref


async def test_hostile_requests_get_a_clear_4xx(platform: Platform, api: Client, ann: User) -> None:
    client = api(ann)
    headers = {"Content-Type": "application/json"}
    # The platform's request guard answers first (in Neptune's shape on the loader): NUL,
    # nesting and size are refused before any route reads the body.
    for deep in ("[" * 200_000 + "]" * 200_000, '{"":' * 200_000 + "1" + "}" * 200_000):
        response = await client.post("/loader", content=deep.encode(), headers=headers)
        refused(response, 400, "BadRequestException", "deep")
    nul = {**request_body(platform, "x/"), "source": f"s3://{SOURCE_BUCKET}/x\u0000/"}
    refused(await client.post("/loader", json=nul), 400, "BadRequestException", "NUL")
    form = {**request_body(platform, "x/"), "parserConfiguration": '{"baseUri": "a\\u0000"}'}
    refused(await client.post("/loader", data=form), 400, "InvalidParameterException", "NUL")
    form = {**request_body(platform, "x/"), "mode": "NEW\x00"}
    refused(await client.post("/loader", data=form), 400, "BadRequestException", "NUL")
    deep_parser = {**request_body(platform, "x/"), "parserConfiguration": "[" * 200_000}
    refused(await client.post("/loader", data=deep_parser), 400, "InvalidParameterException")
    huge = b'{"source": "' + b"x" * (2 << 20) + b'"}'
    refused(await client.post("/loader", content=huge, headers=headers), 413,
            "RequestEntityTooLargeException", "LOADBAY_HTTP__MAX_BODY_BYTES")  # fmt: skip
    for path, params in [
        ("/graph/vertices/a%00b", {}),
        ("/graph/edges/a%00b", {}),
        ("/graph/vertices/a", {"idSpace": "x\x00"}),
        ("/rdf/statements", {"subject": "<a\x00>"}),
        ("/rdf/statements", {"subject": "<a>", "graph": "\x00"}),
        ("/loader/a%00b", {}),
    ]:
        refused(await client.get(path, params=params), 400, "BadRequestException", "NUL")
    settings = platform.settings.auth
    nul_sub = mint_token(settings, "ann\x00", "x@example.com")
    odd = await client.get("/loader", headers={"Authorization": f"Bearer {nul_sub}"})
    refused(odd, 401, "AccessDeniedException", "sub claim", "printable")


async def test_the_loader_refuses_to_start_without_authentication_outside_dev_mode(
    stack: StackInfo,
) -> None:
    env = {
        **os.environ,
        **stack.service_env(),
        "LOADBAY_DEV_MODE": "false",
        "LOADBAY_AUTH__SECRET": uuid.uuid4().hex * 2,
        "LOADBAY_LOADER_NEPTUNE_AUTH": "false",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadbay_cli", "serve", "loader", "--port", "0",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode != 0
    text = output.decode()
    assert "LOADBAY_LOADER_NEPTUNE_AUTH=false" in text and "LOADBAY_DEV_MODE=true" in text, text
