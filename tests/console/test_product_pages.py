"""Beyond the seed, in the same console: a bulk load (status, feed counts, its error page) and
an S3 connection (create, test, upgrade and downgrade, bind a dataset, run now, the run's
copied objects); and each service's /docs, which must load nothing from outside 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from typing import Any

import httpx
from playwright.async_api import Page, Request, expect

from loadbay_platform.auth import mint_token
from tests.conftest import GRAPH_SOURCE_BUCKETS, GRAPH_USERS, Platform, User
from tests.console.conftest import ConsoleFactory, shot
from tests.ingestion.serving import REGION, Ingestion, Remote

BUCKET = GRAPH_SOURCE_BUCKETS[0]


def graph_user(platform: Platform) -> User:
    user_id = GRAPH_USERS[0]  # the session's loader lets only its graph users load
    email = f"{user_id}_{uuid.uuid4().hex[:6]}@example.com"
    return User(user_id, email, mint_token(platform.settings.auth, user_id, email))


async def test_a_bulk_load_shows_its_status_feed_counts_and_errors(
    console_for: ConsoleFactory, page: Page, platform: Platform, s3: Any
) -> None:
    tag = uuid.uuid4().hex[:8]
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    good = f"~id,~label,name:String\n{tag}-a,fruit,apple\n{tag}-b,fruit,pear\n"
    bad = '@prefix e: <http://ex.org/> .\ne:s e:p "ok" .\ne:s e:p e:\x00 .\n'
    s3.put_object(Bucket=BUCKET, Key=f"console/{tag}/good/v.csv", Body=good.encode())
    s3.put_object(Bucket=BUCKET, Key=f"console/{tag}/bad/d.ttl", Body=bad.encode())
    console = await console_for(graph_user(platform))

    await page.goto(console.url + "/loads")
    await page.locator("input[name=source]").fill(f"s3://{BUCKET}/console/{tag}/good/")
    await page.locator("select[name=format]").select_option("csv")
    await page.get_by_role("button", name="Start load").click()
    await page.wait_for_url(re.compile(r"/loads/[^/]+$"))
    await expect(page.locator("h1 .badge")).to_have_text("LOAD COMPLETED", timeout=30_000)
    await expect(page.locator(".feed-counts")).to_contain_text("LOAD COMPLETED 1")
    await expect(page.locator("dl.facts dt:text('Records') + dd")).to_have_text(
        re.compile(r"^[1-9]")
    )
    await shot(page, "11-bulk-load")

    first = page.url.rsplit("/", 1)[1]
    await page.goto(console.url + "/loads")
    await page.locator("input[name=source]").fill(f"s3://{BUCKET}/console/{tag}/bad/")
    await page.locator("select[name=format]").select_option("turtle")
    await page.locator("input[name=baseUri]").fill("http://ex.org/base/")
    await page.locator("input[name=dependencies]").fill(first)  # done already: it runs
    await page.get_by_role("button", name="Start load").click()
    await expect(page.locator("h1 .badge")).to_have_text("LOAD FAILED", timeout=30_000)
    error = page.locator("table.data tr", has=page.get_by_text("PARSING_ERROR"))
    await expect(error).to_contain_text(f"s3://{BUCKET}/console/{tag}/bad/d.ttl")
    await expect(error.locator("td[data-label=Record]")).to_have_text("3")
    await shot(page, "12-bulk-load-failed")
    await page.goto(console.url + "/loads")
    await expect(page.locator("table.data tbody tr")).not_to_have_count(0)
    await shot(page, "13-bulk-loads")


async def test_a_connection_is_created_tested_versioned_bound_and_run(
    console_for: ConsoleFactory,
    page: Page,
    user: User,
    platform: Platform,
    remote: Remote,
    names: tuple[str, str],
) -> None:
    bucket = remote.bucket()
    remote.s3.put_object(Bucket=bucket, Key="exports/orders.csv", Body=b"id,name\n1,apple\n")
    domain, name = names
    async with httpx.AsyncClient(base_url=platform.urls["reload"]) as reload_api:
        made = await reload_api.post(
            "/datasets",
            json={"domain": domain, "name": name, "columns": [
                {"name": "id", "type": "integer"}, {"name": "name", "type": "text"}]},
            headers=user.headers,
        )  # fmt: skip
        assert made.status_code == 201, made.text
    console = await console_for(user)
    connection = f"shop-{uuid.uuid4().hex[:6]}"

    await page.goto(console.url + "/connections")
    form = page.locator("form[action='/connections']")
    await form.locator("input[name=name]").fill(connection)
    await form.locator("input[name=bucket]").fill(bucket)
    await form.locator("select[name=version]").select_option("1.6")
    await form.locator("input[name=region]").fill(REGION)
    await form.locator("input[name=access_key_id]").fill(remote.admin.access_key_id)
    await form.locator("input[name=secret_access_key]").fill(remote.admin.secret_access_key)
    await form.locator("input[name=endpoint_url]").fill(remote.endpoint_url)
    await page.get_by_role("button", name="Create connection").click()
    await expect(page.get_by_text(f"Connection {connection} created.")).to_be_visible()

    await page.get_by_role("button", name="Test connection").click()
    await expect(page.get_by_text(f"loadbay can list and read s3://{bucket}.")).to_be_visible()
    await page.get_by_role("button", name="Upgrade to 1.7").click()
    await expect(page.get_by_text("Connection upgraded to version 1.7.")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Downgrade to 1.6").click()
    await expect(page.get_by_text("Connection downgraded to version 1.6.")).to_be_visible()

    # The ingestion service learns of new datasets from their events: until then it says to
    # retry in a moment, as a person would.
    for _ in range(40):
        await page.locator("input[name=dataset]").last.fill(f"{domain}/{name}")
        await page.locator("input[name=directory_path]").fill("exports/")
        await page.get_by_role("button", name="Bind dataset").click()
        if not await page.get_by_text("retry in a moment").count():
            break
        await asyncio.sleep(0.5)
    await expect(page.get_by_text(f"Dataset {domain}/{name} bound.")).to_be_visible()
    await page.locator("input[name=cron]").fill("0 3 * * *")
    await page.get_by_role("button", name="Save schedule").click()
    await expect(page.get_by_text("Scheduled: 0 3 * * * (UTC).")).to_be_visible()
    await page.get_by_role("button", name="Run now").click()
    await expect(page.get_by_text("Run queued")).to_be_visible()
    # The page refreshes itself while the run is queued or running.
    run = page.locator("section.binding table.data tbody tr").first
    await expect(run.locator("td[data-label=Status]")).to_have_text("succeeded", timeout=30_000)
    await expect(run.locator("td[data-label=Copied]")).to_have_text("1")
    await shot(page, "14-connection")
    await run.get_by_role("link").click()
    await expect(page.locator("code", has_text="exports/orders.csv")).to_be_visible()
    await shot(page, "15-connection-run")
    await page.goto(console.url + "/connections")
    await shot(page, "16-connections")

    # Unbind, then delete the connection: each asks first (a browser dialog).
    await page.get_by_role("link", name=connection).click()
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Unbind").click()
    await expect(page.get_by_text(f"Dataset {domain}/{name} unbound.")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.get_by_role("button", name="Delete connection").click()
    await expect(page.get_by_role("heading", name=re.compile(connection))).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Delete connection").click()
    await expect(page.get_by_text(f"Connection {connection} deleted.")).to_be_visible()
    await expect(page.get_by_text("No connections yet.")).to_be_visible()


async def test_the_api_docs_load_nothing_from_outside(
    page: Page, platform: Platform, ingestion: Ingestion
) -> None:
    outside: list[str] = []

    def watch(request: Request) -> None:
        if not request.url.startswith(("http://127.0.0.1:", "data:", "blob:")):
            outside.append(request.url)

    page.on("request", watch)
    for url in (platform.urls["reload"], platform.urls["loader"], ingestion.url):
        await page.goto(url + "/docs")
        await expect(page.locator(".opblock").first).to_be_visible()
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("ingestion")
    await shot(page, "17-api-docs")
    assert outside == []


async def test_a_data_product_shows_its_workspaces_lsts_and_runs(
    console_for: ConsoleFactory, page: Page, user: User, platform: Platform, s3: Any
) -> None:
    from tests.distribution.test_distribution import Product, ts

    name = f"fruit_{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=platform.urls["distribution"]) as dist_api:
        product = Product(dist_api, user, s3, name)
        await product.create(["acme", "globex"])
    stamp = ts("0820")
    product.put(f"Products_{stamp}_inc.csv", "cp__product_id,a__name,f__price\n1,apple,1.5\n")
    console = await console_for(user)

    await page.goto(console.url + "/products")
    await page.get_by_role("link", name=name).click()
    await page.get_by_role("button", name="Run now").click()
    await expect(page.locator("h1 .badge")).to_have_text("succeeded", timeout=30_000)
    results = page.locator("table.data tbody tr")
    await expect(results).to_have_count(2)
    await expect(results.first).to_contain_text(stamp)
    await shot(page, "18-data-product-run")
    await page.get_by_role("link", name="Data products").first.click()
    await page.get_by_role("link", name=name).click()
    acme = page.locator("tr", has=page.get_by_text("acme", exact=True))
    await expect(acme.locator("td[data-label=LSTS]")).to_have_text(stamp)
    await expect(acme.locator("td[data-label=Failures]")).to_have_text("0")
    await shot(page, "19-data-product")
    await page.goto(console.url + "/")
    products = page.locator("a.card", has=page.get_by_role("heading", name="Data products"))
    await expect(products.locator(".big")).to_have_text("1")
    await shot(page, "20-home")
