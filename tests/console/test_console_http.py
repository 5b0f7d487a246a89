"""The console over plain HTTP (no browser): it never shows more than the API shows the
signed-in user, names what is refused, and refuses an oversized upload before reading it."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import Platform, User, make_user
from tests.console.conftest import ConsoleFactory
from tests.ingestion.serving import REGION, Ingestion, Remote


async def test_another_users_dataset_is_the_apis_404_and_pages_are_not_cached(
    console_for: ConsoleFactory, platform: Platform, alice: User, names: tuple[str, str]
) -> None:
    domain, name = names
    async with httpx.AsyncClient(base_url=platform.urls["reload"]) as api:
        made = await api.post(
            "/datasets",
            json={"domain": domain, "name": name, "columns": [{"name": "a", "type": "text"}]},
            headers=alice.headers,
        )
        assert made.status_code == 201, made.text
    bob = make_user(platform.settings, "bob")
    console = await console_for(bob)
    async with httpx.AsyncClient(base_url=console.url) as browser:
        listing = await browser.get("/datasets")
        assert listing.status_code == 200 and domain not in listing.text
        assert listing.headers["cache-control"] == "no-store"
        assert "default-src 'self'" in listing.headers["content-security-policy"]
        hidden = await browser.get(f"/datasets/{domain}/{name}/pending")
        assert hidden.status_code == 404
        assert f"no dataset {domain}/{name} (or you are not authorized on it)" in hidden.text
        # A name with a slash stays one path segment: it never reaches another API route.
        odd = await browser.get("/datasets/x%2F..%2Fexecutions/y")
        assert odd.status_code in (404, 422)
        assert (await browser.get("/no/such/page")).status_code == 404
        # The shared HTTP metrics, by route, as every service exports them.
        metrics = (await browser.get("/metrics")).text
        assert (
            'loadbay_http_requests_total{method="GET",route="/datasets/{domain}/{name}/pending",'
            'service="console",status="404"}' in metrics
        )


async def test_an_upload_over_the_limit_is_refused_before_it_is_read(
    console_for: ConsoleFactory, platform: Platform, user: User, names: tuple[str, str]
) -> None:
    console = await console_for(user, max_upload_bytes=1000)
    async with httpx.AsyncClient(base_url=console.url) as browser:
        page = await browser.get("/datasets")
        csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        too_big = await browser.post(
            f"/datasets/{names[0]}/{names[1]}/upload",
            headers={"X-CSRF-Token": csrf, "X-Requested-With": "XMLHttpRequest"},
            files=[("files", ("big.csv", b"a\n" * 1000))],
        )
        assert too_big.status_code == 413
        assert "over the limit of 1000 bytes" in too_big.json()["message"]
        streamed = await browser.post(
            f"/datasets/{names[0]}/{names[1]}/upload-stream",
            headers={"X-CSRF-Token": csrf},
            files=[("files", ("big.csv", b"a\n" * 1000))],
        )
        assert streamed.status_code == 413
        # The streaming route takes its CSRF token from the header only.
        forged = await browser.post(
            f"/datasets/{names[0]}/{names[1]}/upload-stream",
            data={"csrf": csrf},
            files=[("files", ("small.csv", b"a\n"))],
        )
        assert forged.status_code == 403


async def test_a_bucket_policy_connection_shows_its_policy(
    console_for: ConsoleFactory, user: User, ingestion: Ingestion, remote: Remote
) -> None:
    bucket = remote.bucket()
    name = f"pol-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=ingestion.url) as api:
        made = await api.post(
            "/connections",
            json={"name": name, "bucket": bucket, "access_type": "bucket_policy",
                  "region": REGION, "endpoint_url": remote.endpoint_url},
            headers=user.headers,
        )  # fmt: skip
        assert made.status_code == 201, made.text
    console = await console_for(user)
    async with httpx.AsyncClient(base_url=console.url) as browser:
        page = await browser.get(f"/connections/{name}")
        assert f"/connections/{name}/policy/bucket-policy" in page.text
        policy = await browser.get(f"/connections/{name}/policy/bucket-policy")
        assert policy.status_code == 200
        assert "s3:GetObject" in policy.text and f"arn:aws:s3:::{bucket}" in policy.text


async def test_a_refused_dataset_form_shows_the_api_s_reason_and_keeps_what_was_typed(
    console_for: ConsoleFactory, user: User
) -> None:
    console = await console_for(user)
    async with httpx.AsyncClient(base_url=console.url) as browser:
        page = await browser.get("/datasets/new")
        csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        form = {
            "csrf": csrf, "domain": "public", "name": "orders", "dataset_type": "append",
            "column_name": ["id", ""], "column_type": ["integer", "text"],
            "column_required": ["yes", "no"], "users": "ann ann@example.com",
        }  # fmt: skip
        refused = await browser.post("/datasets/new", data=form)
        assert refused.status_code == 400
        assert "PostgreSQL&#39;s default schema" in refused.text  # the API's 409, escaped
        assert 'value="public"' in refused.text and "ann ann@example.com" in refused.text
        assert '<option value="append" selected>' in refused.text
        bad_users = await browser.post("/datasets/new", data={**form, "users": "ann"})
        assert "Authorized users, line 1" in bad_users.text
        no_columns = await browser.post("/datasets/new", data={**form, "column_name": ["", ""]})
        assert "at least one column" in no_columns.text
        listing = await browser.get("/datasets")
        assert "public/" not in listing.text


async def test_upload_stream_passes_a_large_file_through_to_the_landing_zone(
    console_for: ConsoleFactory, platform: Platform, user: User, names: tuple[str, str]
) -> None:
    domain, name = names
    async with httpx.AsyncClient(base_url=platform.urls["reload"]) as api:
        made = await api.post(
            "/datasets",
            json={"domain": domain, "name": name, "columns": [{"name": "a", "type": "text"}]},
            headers=user.headers,
        )
        assert made.status_code == 201, made.text
    console = await console_for(user)
    body = b"a\n" + (b"y" * 1023 + b"\n") * (3 * 1024)  # a header line, then 3 MiB of rows
    async with httpx.AsyncClient(base_url=console.url, timeout=60) as browser:
        page = await browser.get("/datasets")
        csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        landed = await browser.post(
            f"/datasets/{domain}/{name}/upload-stream",
            headers={"X-CSRF-Token": csrf, "X-Requested-With": "XMLHttpRequest"},
            data={"csrf": csrf},
            files=[("files", ("big.csv", body)), ("files", ("small.csv", b"a\n1\n"))],
        )
        assert landed.status_code == 200, landed.text
        assert landed.json()["files"] == ["big.csv", "small.csv"]
    async with httpx.AsyncClient(base_url=platform.urls["reload"]) as api:
        files = (await api.get(f"/datasets/{domain}/{name}/files", headers=user.headers)).json()
    assert {f["name"]: f["size"] for f in files} == {"big.csv": len(body), "small.csv": 4}
