"""`loadbay graph`: the bulk loader from the terminal, against the session's loader."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx

from loadbay_platform.settings import PlatformSettings
from tests.cli.runner import run_cli
from tests.conftest import GRAPH_SOURCE_BUCKETS, GRAPH_USERS, Platform, User
from tests.loader.conftest import graph_user

ROLE = "arn:aws:iam::123456789012:role/NeptuneLoadFromS3"
BUCKET = GRAPH_SOURCE_BUCKETS[0]  # readable by the session's loader
STATUS_KEYS = {
    "fullUri", "runNumber", "retryNumber", "status", "totalTimeSpent", "startTime",
    "totalRecords", "totalDuplicates", "parsingErrors", "datatypeMismatchErrors", "insertErrors",
}  # fmt: skip


def _source(s3: Any, files: dict[str, bytes]) -> str:
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    prefix = f"cli-{uuid.uuid4().hex[:8]}/"
    for name, body in files.items():
        s3.put_object(Bucket=BUCKET, Key=prefix + name, Body=body)
    return f"s3://{BUCKET}/{prefix}"


async def test_a_bulk_load_followed_to_its_end_then_its_status_and_a_reset(
    platform: Platform, settings: PlatformSettings, s3: Any
) -> None:
    ann = graph_user(settings, GRAPH_USERS[0])
    env = {
        "LOADBAY_LOADER_URL": platform.urls["loader"], "LOADBAY_TOKEN": ann.token,
        "LOADBAY_S3__REGION": platform.settings.s3.region or "",  # the region --region defaults to
    }  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    source = _source(s3, {
        "v.csv": f"~id,~label,name:String\n{tag}-a,person,ann\n{tag}-b,person,ben\n".encode(),
        "e.csv": f"~id,~from,~to,~label\n{tag}-e,{tag}-a,{tag}-b,knows\n".encode(),
    })  # fmt: skip
    code, out, err = await run_cli(
        "graph", "load", source, "--format", "csv", "--iam-role-arn", ROLE, "--queue-request",
        "--parallelism", "LOW", "--follow", "--interval", "0.2", "-o", "json", env=env,
    )  # fmt: skip
    assert code == 0, err
    followed = json.loads(out)
    load_id = followed["loadId"]
    assert followed["overallStatus"]["status"] == "LOAD_COMPLETED"
    assert f"load {load_id}: LOAD_COMPLETED" in err  # progress went to stderr
    assert "Traceback" not in err

    code, out, err = await run_cli(
        "graph", "status", load_id, "--details", "--errors", "-o", "json", env=env
    )
    assert code == 0, err
    status = json.loads(out)
    assert set(status) >= {"loadId", "overallStatus", "feedCount", "failedFeeds", "errors"}
    assert set(status["overallStatus"]) >= STATUS_KEYS
    overall = status["overallStatus"]
    assert (overall["status"], overall["fullUri"]) == ("LOAD_COMPLETED", source)
    # Neptune counts records as a label or a property value: 2 x (label, name) + 1 edge.
    assert overall["totalRecords"] == 5 and overall["parsingErrors"] == 0
    assert status["feedCount"] == [{"LOAD_COMPLETED": 2}]
    assert status["failedFeeds"] == [] and status["errors"]["errorLogs"] == []

    async with httpx.AsyncClient(base_url=platform.urls["loader"], headers=ann.headers) as http:
        assert (await http.get(f"/graph/vertices/{tag}-a")).status_code == 200
        listed, table, unconfirmed = await asyncio.gather(
            run_cli("graph", "list", "-o", "json", env=env),
            run_cli("graph", "status", load_id, env=env),  # the table, for people
            run_cli("graph", "reset", env=env),  # no --yes: nothing happens
        )
        assert listed[0] == 0 and {"loadId": load_id} in json.loads(listed[1])
        assert table[0] == 0 and "LOAD_COMPLETED" in table[1] and load_id in table[1]
        assert unconfirmed[0] == 1 and "--yes" in unconfirmed[2]
        assert (await http.get(f"/graph/vertices/{tag}-a")).status_code == 200
        code, out, err = await run_cli("graph", "reset", "--yes", "-o", "json", env=env)
        assert code == 0, err
        reset = json.loads(out)
        assert reset["reset"] is True and uuid.UUID(reset["token"])
        assert (await http.get(f"/graph/vertices/{tag}-a")).status_code == 404
        assert (await http.get("/graph/summary")).json()["vertices"] == 0


async def test_a_failed_load_waits_to_exit_3_and_shows_its_errors(
    platform: Platform, settings: PlatformSettings, s3: Any, alice: User
) -> None:
    ann = graph_user(settings, GRAPH_USERS[0])
    env = {
        "LOADBAY_LOADER_URL": platform.urls["loader"], "LOADBAY_TOKEN": ann.token,
        "LOADBAY_S3__REGION": platform.settings.s3.region or "",  # the region --region defaults to
    }  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    source = _source(s3, {
        "v.csv": f"~id,~label,age:Int\n{tag}-a,person,29\n{tag}-b,person,old\n".encode(),
    })  # fmt: skip
    (code, out, err), denied = await asyncio.gather(
        run_cli(
            "graph", "load", source, "--format", "csv", "--iam-role-arn", ROLE,
            "--no-fail-on-error", "--queue-request", "-o", "json", env=env,
        ),
        # Not one of the graph's users: the loader's 403, in one line.
        run_cli(
            "graph", "load", source, "--format", "csv", "--iam-role-arn", ROLE,
            env={**env, "LOADBAY_TOKEN": alice.token},
        ),
    )  # fmt: skip
    assert code == 0, err
    load_id = json.loads(out)["loadId"]
    assert denied[0] == 1 and denied[1] == "" and "Traceback" not in denied[2]
    assert denied[2].startswith("error: ") and "AccessDeniedException" in denied[2]
    assert "(HTTP 403)" in denied[2] and denied[2].count("\n") == 1
    code, out, err = await run_cli(
        "graph", "wait", load_id, "--interval", "0.2", "-o", "json", env=env
    )
    assert code == 3, err  # it ended, but not LOAD_COMPLETED
    assert json.loads(out)["overallStatus"]["status"] == "LOAD_FAILED"
    (code, out, err), cancelled = await asyncio.gather(
        run_cli(
            "graph", "status", load_id, "--errors", "--errors-per-page", "1", "-o", "json",
            env=env,
        ),
        run_cli("graph", "cancel", load_id, env=env),  # it has ended: the loader refuses
    )  # fmt: skip
    assert code == 0, err
    errors = json.loads(out)["errors"]
    (log,) = errors["errorLogs"]
    assert log["fileName"].endswith("v.csv") and log["recordNum"] == 2, log
    assert (errors["startIndex"], errors["endIndex"]) == (1, 1)
    code, out, err = cancelled
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert "BulkLoadIdNotFoundException" in err and "'code'" not in err
