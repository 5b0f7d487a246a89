"""Hostile input to the reload service: a clear 4xx or a failed execution with a bounded
reason, never a 500, and the data left as it was."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Mailbox, Platform, User, body_text
from tests.reload.flows import batch_prefix, create_dataset, files, finished_execution, land


async def test_a_10000_column_header_fails_with_a_truncated_reason_stored_and_emailed(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
    mail: Mailbox,
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    header = ",".join(f"column_{i}" for i in range(10_000))
    land(s3, platform.settings.s3.lz_bucket, batch_prefix(domain, name, alice),
         {"wide.csv": (header + "\n" + ",".join("1" * 10_000) + "\n").encode()})  # fmt: skip

    execution = await finished_execution(reload_api, alice, domain, name)
    assert execution["status"] == "failed"
    reason = execution["reason"]
    assert reason.startswith("wide.csv line 1: header does not match the dataset's columns")
    assert 2_000 < len(reason) < 2_200, len(reason)
    assert reason.endswith(" more characters)") and "…" in reason
    assert execution["error"]["message"] == reason
    (pending,) = await files(reload_api, alice, domain, name, "pending")
    assert pending["error"] == reason

    (message,) = await mail.wait_for(alice.email)
    text = body_text(message)
    assert "more characters)" in text
    assert len(text) < 12_000, len(text)


async def test_a_dataset_of_more_columns_than_postgresql_allows_is_refused(
    reload_api: httpx.AsyncClient, alice: User, names: tuple[str, str]
) -> None:
    domain, name = names
    columns = [{"name": f"c{i}", "type": "text"} for i in range(10_000)]
    response = await reload_api.post(
        "/datasets", json={"domain": domain, "name": name, "columns": columns},
        headers=alice.headers,
    )  # fmt: skip
    assert response.status_code == 422
    assert "1600" in response.text


async def test_nul_and_huge_values_in_paths_and_bodies_get_4xx(
    reload_api: httpx.AsyncClient, alice: User, names: tuple[str, str]
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    h = alice.headers
    for method, path in [
        ("GET", "/datasets/d%00x/orders"),
        ("GET", f"/datasets/{domain}/{name}%00"),
        ("DELETE", f"/datasets/{domain}/{'x' * 20_000}"),
        ("GET", f"/datasets/{domain}/{name}/files?status=pending%00"),
        ("GET", "/executions/abc%00def"),
        ("GET", f"/executions/{'9' * 5000}"),
    ]:
        response = await reload_api.request(method, path, headers=h)
        assert 400 <= response.status_code < 500, (
            path,
            response.status_code,
            response.text[:300],
        )
    for body in [
        {"file_ids": [10**30]},
        {"file_ids": [-1]},
        {"file_ids": ["a\u0000"]},
    ]:
        response = await reload_api.post(f"/datasets/{domain}/{name}/process", json=body, headers=h)
        # 400 when the platform's guard refuses a NUL before the route validates the body
        assert response.status_code in (400, 422), (body, response.text)
    for bad in [
        {"description": "a\u0000b"},
        {"authorized_users": [{"user_id": "x\u0000", "email": "x@example.com"}]},
        {"authorized_users": [{"user_id": "x", "email": "x\u0000@example.com"}]},
        {"domain": "d\u0000"},
        {"csv": {"delimiter": "\u0000"}},
        {"csv": {"quote": "\n"}},
        {"csv": {"delimiter": "é"}},
        {"csv": {"delimiter": "'", "quote": "'"}},
    ]:
        body = {"domain": f"{domain}_b", "name": name, "columns": [{"name": "a", "type": "text"}]}
        response = await reload_api.post("/datasets", json={**body, **bad}, headers=h)
        # 400 when the platform's guard refuses a NUL before the route validates the body
        assert response.status_code in (400, 422), (bad, response.text)
