"""Hostile input to the distribution service: workspace schemas never collide, a missing
source bucket is a failed run with the reason and an email, long reasons are bounded, and bad
ids or NULs get a 4xx, never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import Mailbox, User, body_text
from tests.distribution.test_distribution import Product, dist_api, product, ts

__all__ = ["dist_api", "product"]


async def test_a_workspace_whose_schema_is_another_s_answers_409(
    dist_api: httpx.AsyncClient, alice: User, bob: User, s3: Any
) -> None:
    stem = f"dp_{uuid.uuid4().hex[:8]}"
    first, second = Product(dist_api, alice, s3, f"{stem}_b"), Product(dist_api, bob, s3, stem)
    await first.create(["c"])
    await second.create([])
    # product <stem>_b + client c and product <stem> + client b_c both spell ws_<stem>_b_c
    clash = await dist_api.post(
        f"/data-products/{stem}/workspaces", json={"client_id": "b_c"}, headers=bob.headers
    )
    assert clash.status_code == 409, clash.text
    assert f"ws_{stem}_b_c" in clash.json()["message"]
    assert "already another workspace's" in clash.json()["message"]
    assert (await second.workspaces()) == {}
    assert (await first.workspaces())["c"]["schema"] == f"ws_{stem}_b_c"
    # the same client id in the same product stays the plain "taken"
    again = await dist_api.post(
        f"/data-products/{stem}_b/workspaces", json={"client_id": "c"}, headers=alice.headers
    )
    assert again.status_code == 409 and "is taken" in again.json()["message"]


async def test_a_run_on_a_missing_bucket_fails_with_the_reason_and_an_email(
    dist_api: httpx.AsyncClient, alice: User, mail: Mailbox
) -> None:
    name = f"dp_{uuid.uuid4().hex[:8]}"
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    made = await dist_api.post(
        "/data-products", json={"name": name, "bucket": bucket}, headers=alice.headers
    )
    assert made.status_code == 201, made.text
    await dist_api.post(f"/data-products/{name}/workspaces", json={"client_id": "acme"},
                        headers=alice.headers)  # fmt: skip
    started = await dist_api.post(f"/data-products/{name}/runs", headers=alice.headers)
    assert started.status_code == 202, started.text
    run = (await dist_api.get(f"/runs/{started.json()['run_id']}", headers=alice.headers)).json()
    assert run["status"] == "failed"
    assert run["problems"] == [f"cannot list the source s3://{bucket}/: NoSuchBucket"
                               " (The specified bucket does not exist)"]  # fmt: skip
    (message,) = await mail.wait_for(alice.email)
    assert "NoSuchBucket" in body_text(message)


async def test_a_long_workspace_failure_reason_is_truncated(product: Product, alice: User) -> None:
    await product.create(["acme"])
    # 990 long column names without a GoodData prefix (under the loader's column limit): each
    # is named in the reason
    header = "cp__product_id,a__name,f__price," + ",".join(
        f"unprefixed_column_{i:04d}_{'x' * 30}" for i in range(990)
    )
    product.put(f"products_{ts('0401')}_inc.csv", header + "\n")
    run = await product.run()
    (result,) = run["results"]
    assert result["status"] == "failed"
    assert len(result["reason"]) < 2_300, len(result["reason"])
    assert result["reason"].endswith(" more characters)")


async def test_bad_names_ids_and_nuls_get_4xx(
    product: Product, dist_api: httpx.AsyncClient, alice: User
) -> None:
    await product.create(["acme"])
    h, p = alice.headers, product.name
    for method, path in [
        ("GET", "/data-products/a%00b"),
        ("DELETE", f"/data-products/{'x' * 20_000}"),
        ("GET", "/runs/r%00n"),
        ("GET", f"/runs/{'9' * 5_000}"),
        ("DELETE", f"/data-products/{p}/workspaces/ac%00me"),
        ("DELETE", f"/data-products/{p}/datasets/pr%00ducts"),
        ("GET", f"/data-products/{p}/runs?limit=10000000000000000000000"),
    ]:
        response = await dist_api.request(method, path, headers=h)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
    for body in [
        {"name": f"{p}x", "bucket": "Bad_Bucket"},
        {"name": f"{p}x", "bucket": "ok-bucket", "prefix": "a\u0000"},
        {"name": f"{p}x", "bucket": "ok\u0000bucket"},
    ]:
        response = await dist_api.post("/data-products", json=body, headers=h)
        # 400 when the platform's guard refuses a NUL before the route validates the body
        assert response.status_code in (400, 422), (body, response.text)
    for path, body in [
        (f"/data-products/{p}/segments", {"name": "seg\u0000"}),
        (f"/data-products/{p}/segments", {"name": "seg\n"}),
        (f"/data-products/{p}/workspaces", {"client_id": "x", "segment": "d\u0000"}),
    ]:
        response = await dist_api.post(path, json=body, headers=h)
        # 400 when the platform's guard refuses a NUL before the route validates the body
        assert response.status_code in (400, 422), (body, response.text)
    cron = await dist_api.put(f"/data-products/{p}/schedule", json={"cron": "* *\u0000 * * *"},
                              headers=h)  # fmt: skip
    assert 400 <= cron.status_code < 500
