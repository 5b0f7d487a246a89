"""The Amorphic seed's reload UI, in a real browser on the real services: create a dataset,
Upload Data (two files), FileStatus tabs, Pending files with Process Files and Permanently
Delete File(s), the execution with its rows, a bad file's file/line/column/value, and the 409
of Process Files while a reload runs (which the running page then shows finishing by itself)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncpg
from playwright.async_api import Page, expect

from tests.conftest import User
from tests.console.conftest import PHONE, ConsoleFactory, shot

GOOD = "id,name,amount\n1,apple,1.50\n2,pear,2.25\n"
MORE = "id,name,amount\n3,plum,0.75\n"
BAD = "id,name,amount\n1,apple,1.50\n2,pear,2.25\nthree,fig,1.00\n"


async def create_dataset(page: Page, url: str, domain: str, name: str) -> None:
    await page.goto(url + "/datasets")
    await page.get_by_role("link", name="Create dataset").click()
    await page.locator("input[name=domain]").fill(domain)
    await page.locator("input[name=name]").fill(name)
    await page.locator("textarea[name=description]").fill(
        "Fruit orders, reloaded from the shop's export"
    )
    names = page.get_by_label("Column name")
    types = page.get_by_label("Column type")
    for row, (column, kind) in enumerate(
        (("id", "integer"), ("name", "text"), ("amount", "numeric"))
    ):
        await names.nth(row).fill(column)
        await types.nth(row).select_option(kind)
    await page.get_by_label("Required").first.select_option("yes")
    await page.locator("textarea[name=users]").fill("ann_friend ann.friend@example.com")
    await page.get_by_role("button", name="Create dataset").click()
    await expect(page.get_by_text(f"Dataset {domain}/{name} created.")).to_be_visible()
    await expect(page.locator(".page-head")).to_contain_text("authorized: ann_friend")
    await expect(page.locator(".page-head")).to_contain_text("id integer required")


async def upload(
    page: Page, tmp_path: Path, files: dict[str, str], *, scripted: bool = True
) -> None:
    paths = []
    for file_name, text in files.items():
        path = tmp_path / file_name
        path.write_text(text)
        paths.append(path)
    await page.get_by_role("link", name="Upload Data").click()
    await page.locator('input[type="file"]').set_input_files(paths)
    if scripted:
        await expect(page.locator("[data-chosen] li")).to_have_count(len(paths))
        await shot(page, "02-upload-data")
    async with page.expect_request(lambda r: r.method == "POST") as sent:
        await page.get_by_role("button", name="Upload", exact=True).click()
    # With JavaScript, XMLHttpRequest (for the progress bar); without, a plain form post.
    xhr = (await sent.value).headers.get("x-requested-with")
    assert xhr == ("XMLHttpRequest" if scripted else None)
    await page.wait_for_url(re.compile(r"/pending$"))
    await expect(page.get_by_text(f"Uploaded {len(files)} file(s)")).to_be_visible()


def row(page: Page, file_name: str):  # type: ignore[no-untyped-def]
    return page.locator("tr", has=page.get_by_text(file_name, exact=True))


async def test_create_upload_process_delete_and_see_the_execution(
    console_for: ConsoleFactory, page: Page, user: User, names: tuple[str, str], tmp_path: Path
) -> None:
    console = await console_for(user)
    domain, name = names
    await create_dataset(page, console.url, domain, name)
    await upload(page, tmp_path, {"orders.csv": GOOD, "unwanted.csv": MORE})
    await expect(row(page, "orders.csv")).to_be_visible()
    await expect(row(page, "unwanted.csv")).to_be_visible()

    # Select all, then deselect all, then just one: the counter follows.
    await page.get_by_role("button", name="Select all", exact=True).click()
    await expect(page.get_by_text("2 selected")).to_be_visible()
    await page.get_by_role("button", name="Deselect all").click()
    await expect(page.get_by_text("0 selected")).to_be_visible()
    await row(page, "orders.csv").get_by_role("checkbox").check()
    await shot(page, "03-pending-files")
    await page.get_by_role("button", name="Process Files").click()

    # The execution page refreshes itself until the reload has finished.
    await page.wait_for_url(re.compile(r"/executions/"))
    await expect(page.locator("h1 .badge")).to_have_text("succeeded", timeout=30_000)
    await expect(page.locator("[data-rows]")).to_have_text("2")
    await expect(row(page, "orders.csv")).to_be_visible()
    await shot(page, "04-execution-completed")

    # Permanently Delete File(s): a confirmation first, then the file is gone.
    await page.goto(f"{console.url}/datasets/{domain}/{name}/pending")
    await row(page, "unwanted.csv").get_by_role("checkbox").check()
    await page.get_by_role("button", name="Permanently Delete File(s)").click()
    await expect(page.get_by_role("heading", name="Permanently delete 1 file(s)?")).to_be_visible()
    await shot(page, "05-confirm-delete")
    await page.get_by_role("button", name="Permanently Delete File(s)").click()
    await expect(page.get_by_text("Permanently deleted unwanted.csv.")).to_be_visible()
    await expect(page.get_by_text("No files here.")).to_be_visible()

    # FileStatus: the completed tab has the processed file; the executions say what ran.
    await page.goto(f"{console.url}/datasets/{domain}/{name}")
    await page.get_by_role("link", name=re.compile("^Completed")).click()
    await expect(row(page, "orders.csv")).to_be_visible()
    await expect(
        page.get_by_role("link", name=re.compile("^Pending")).locator(".count")
    ).to_have_text("0")
    await shot(page, "02-dataset-filestatus")
    await page.get_by_role("link", name="View All Executions").first.click()
    execution = page.locator("table.data tbody tr").first
    await expect(execution).to_contain_text("succeeded")
    await expect(execution.locator("td[data-label=Rows]")).to_have_text("2")
    await expect(execution.locator("td[data-label=Files]")).to_have_text("1")
    await shot(page, "06-all-executions")

    await page.goto(console.url + "/datasets")
    await expect(page.get_by_role("link", name=f"{domain}/{name}")).to_be_visible()
    await shot(page, "01-datasets")
    await page.goto(console.url + "/datasets/new")
    await shot(page, "00-create-dataset")


async def test_a_bad_file_shows_its_file_line_column_and_value(
    console_for: ConsoleFactory, page: Page, user: User, names: tuple[str, str], tmp_path: Path
) -> None:
    console = await console_for(user)
    domain, name = names
    await create_dataset(page, console.url, domain, name)
    await upload(page, tmp_path, {"broken.csv": BAD})
    await page.get_by_role("button", name="Select all", exact=True).click()
    await page.get_by_role("button", name="Process Files").click()
    await expect(page.locator("h1 .badge")).to_have_text("failed", timeout=30_000)
    detail = page.locator("dl.error-detail")
    await expect(detail).to_contain_text("broken.csv")
    await expect(detail.locator("dt:text('Line') + dd")).to_have_text("4")
    await expect(detail.locator("dt:text('Column') + dd")).to_have_text("id")
    await expect(detail.locator("dt:text('Value') + dd")).to_have_text("three")
    await shot(page, "07-execution-failed")
    await page.emulate_media(color_scheme="dark")  # a dark screen: the same page, darker
    await shot(page, "07-execution-failed-dark")
    await page.emulate_media(color_scheme="light")
    # The file's own error, in full, on the FileStatus list.
    await page.goto(f"{console.url}/datasets/{domain}/{name}")
    await expect(row(page, "broken.csv").locator(".file-error")).to_contain_text("three")


async def test_process_files_while_a_reload_runs_shows_the_refusal(
    console_for: ConsoleFactory,
    page: Page,
    user: User,
    names: tuple[str, str],
    tmp_path: Path,
    stack_db: str,
) -> None:
    console = await console_for(user)
    domain, name = names
    await create_dataset(page, console.url, domain, name)
    await upload(page, tmp_path, {"first.csv": GOOD})
    await page.get_by_role("button", name="Select all", exact=True).click()
    await page.get_by_role("button", name="Process Files").click()
    await expect(page.locator("h1 .badge")).to_have_text("succeeded", timeout=30_000)

    # A lock on the dataset's table holds the next reload running for as long as we need.
    blocker = await asyncpg.connect(stack_db)
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute(f'LOCK TABLE "{domain}"."{name}" IN ACCESS SHARE MODE')
    try:
        await page.goto(f"{console.url}/datasets/{domain}/{name}")
        await upload(page, tmp_path, {"second.csv": MORE, "third.csv": MORE})
        await row(page, "second.csv").get_by_role("checkbox").check()
        await page.get_by_role("button", name="Process Files").click()
        await expect(page.locator(".running")).to_contain_text("refreshes by itself")
        await shot(page, "08-execution-running")
        running_url = page.url

        await page.goto(f"{console.url}/datasets/{domain}/{name}/pending")
        await row(page, "third.csv").get_by_role("checkbox").check()
        await page.get_by_role("button", name="Process Files").click()
        refusal = page.locator(".flash-error")
        await expect(refusal).to_contain_text(f"a reload of {domain}/{name} is running")
        await expect(refusal).to_contain_text("only one runs at a time")
        await shot(page, "09-process-refused")

        await page.goto(running_url)
        await expect(page.locator("h1 .badge")).to_have_text("running")
    finally:
        await transaction.rollback()
        await blocker.close()
    # The running page notices the end by itself, without a click.
    await expect(page.locator("h1 .badge")).to_have_text("succeeded", timeout=30_000)
    await expect(page.locator("[data-rows]")).to_have_text("1")


async def test_narrow_screen_shows_tables_as_cards(
    console_for: ConsoleFactory, browser: object, user: User, names: tuple[str, str], tmp_path: Path
) -> None:
    console = await console_for(user)
    context = await browser.new_context(viewport=PHONE)  # type: ignore[attr-defined]
    try:
        page = await context.new_page()
        domain, name = names
        await create_dataset(page, console.url, domain, name)
        await upload(page, tmp_path, {"orders.csv": GOOD})
        cell = row(page, "orders.csv").locator("td[data-label=Status]")
        await expect(cell).to_be_visible()
        # No sideways scrolling on a phone: no page is wider than the screen.
        await shot(page, "10-pending-phone")
        for path in ("", "/executions", "/upload"):
            await page.goto(f"{console.url}/datasets/{domain}/{name}{path}")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], (path, width)
        for path in ("/", "/loads", "/connections", "/products", "/datasets/new"):
            await page.goto(console.url + path)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], (path, width)
        await shot(page, "10-create-dataset-phone")
    finally:
        await context.close()


async def test_without_javascript_every_step_still_works(
    console_for: ConsoleFactory, browser: object, user: User, names: tuple[str, str], tmp_path: Path
) -> None:
    """Plain forms and links: upload (a form post), select, Process Files, delete after the
    confirmation page, and the execution (reloaded by hand instead of by itself)."""
    console = await console_for(user)
    context = await browser.new_context(java_script_enabled=False)  # type: ignore[attr-defined]
    try:
        page = await context.new_page()
        domain, name = names
        await create_dataset(page, console.url, domain, name)
        files = {"orders.csv": GOOD, "unwanted.csv": MORE}
        await upload(page, tmp_path, files, scripted=False)
        await row(page, "unwanted.csv").get_by_role("checkbox").check()
        await page.get_by_role("button", name="Permanently Delete File(s)").click()
        await page.get_by_role("button", name="Permanently Delete File(s)").click()
        await expect(page.get_by_text("Permanently deleted unwanted.csv.")).to_be_visible()
        await row(page, "orders.csv").get_by_role("checkbox").check()
        await page.get_by_role("button", name="Process Files").click()
        await page.wait_for_url(re.compile(r"/executions/"))
        for _ in range(60):
            if await page.locator("h1 .badge").text_content() != "running":
                break
            await asyncio.sleep(0.5)
            await page.reload()
        await expect(page.locator("h1 .badge")).to_have_text("succeeded")
        await expect(page.locator("[data-rows]")).to_have_text("2")
    finally:
        await context.close()
