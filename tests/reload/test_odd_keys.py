"""Odd keys in a batch folder are reported one by one and never block the batch: each goes to
`loadbay.file.landed.dlq` with its reason, and the batch loads its good files."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx

from tests.conftest import Platform, User, eventually
from tests.reload.flows import (
    batch_prefix,
    create_dataset,
    dead_letters,
    files,
    finished_execution,
    land,
    publish,
)

GOOD = b"id,name,amount,day\n1,a,1.5,2024-01-01\n2,b,,2024-01-02\n"
ODD = {
    "%2e%2e/x.csv": "not 6 (a nested folder?)",
    "../x.csv": "not 6 (a nested folder?)",
    "nested/folder/y.csv": "not 6 (a nested folder?)",
    "nul\x00.csv": "control character",
    "tab\x01odd.csv": "control character",
}


async def test_odd_keys_are_dead_lettered_with_their_reason_and_the_batch_loads_the_rest(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
    warehouse: asyncpg.Connection,
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    prefix = batch_prefix(domain, name, alice)
    bucket = platform.settings.s3.lz_bucket
    land(s3, bucket, prefix, {k: b"id,name,amount,day\n9,odd,9,2024-01-09\n" for k in ODD},
         success=False)  # fmt: skip
    land(s3, bucket, prefix, {"good.csv": GOOD})

    execution = await finished_execution(reload_api, alice, domain, name)
    assert execution["status"] == "succeeded", execution
    assert execution["files"] == [prefix + "good.csv"]
    rows = await warehouse.fetch(f'SELECT id, name FROM "{domain}"."{name}" ORDER BY id')
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "b")]
    assert [f["name"] for f in await files(reload_api, alice, domain, name)] == ["good.csv"]

    bootstrap = platform.settings.kafka.bootstrap_servers

    async def every_odd_key_reported() -> dict[str, str]:
        found = await dead_letters(bootstrap, "loadbay.file.landed", prefix)
        reasons = {d["value"]["data"]["key"]: d["headers"]["loadbay-error"] for d in found}
        return reasons if all(prefix + k in reasons for k in ODD) else {}

    reasons = await eventually(every_odd_key_reported, within=30)
    for key, expected in ODD.items():
        assert expected in reasons[prefix + key], (key, reasons[prefix + key])


async def test_an_upload_whose_name_has_a_nul_is_refused(
    reload_api: httpx.AsyncClient, alice: User, names: tuple[str, str]
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    # Built by hand: httpx would percent-encode the NUL in the file name.
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="files"; filename="bad\x00name.csv"'
        b"\r\nContent-Type: text/csv\r\n\r\n" + GOOD + b"\r\n--b0undary--\r\n"
    )
    response = await reload_api.post(
        f"/datasets/{domain}/{name}/files",
        content=body,
        headers={**alice.headers, "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert response.status_code == 400, response.text
    assert "control character" in response.json()["message"]
    assert await files(reload_api, alice, domain, name) == []


async def test_a_nul_key_in_an_s3_notification_is_dead_lettered_and_the_other_record_lands(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    prefix = batch_prefix(domain, name, alice, 43)
    s3.put_object(Bucket=platform.settings.s3.lz_bucket, Key=prefix + "fine.csv", Body=b"x")
    records = [
        {
            "eventName": "ObjectCreated:Put",
            "s3": {
                "bucket": {"name": platform.settings.s3.lz_bucket},
                "object": {"key": (prefix + key).replace("=", "%3D"), "size": 1, "eTag": "e"},
            },
        }
        for key in ("nul%00.csv", "fine.csv")
    ]
    bootstrap = platform.settings.kafka.bootstrap_servers
    await publish(bootstrap, "loadbay.s3.notifications", json.dumps({"Records": records}).encode())

    async def landed() -> list[dict[str, Any]]:
        return await files(reload_api, alice, domain, name, "pending")

    assert [f["name"] for f in await eventually(landed)] == ["fine.csv"]

    async def reported() -> list[dict[str, Any]]:
        return await dead_letters(bootstrap, "loadbay.file.landed", prefix + "nul")

    (dead,) = await eventually(reported, within=30)
    assert dead["value"]["data"]["key"] == prefix + "nul\x00.csv"
    assert "holds a NUL" in dead["headers"]["loadbay-error"]
