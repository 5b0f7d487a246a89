"""The console on the session's real services, and headless Chromium to drive it.

Chromium is Debian's (/usr/bin/chromium, installed by scripts/install-browser.sh, which
`make install` runs); Playwright drives it and never downloads a browser of its own. Each test
gets a console signed in (dev mode) as a user of its own, so tests never see each other's data,
and a fresh browser context. Screenshots go to SCREENSHOTS (gitignored), for people to look at.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from loadbay_console.app import create_app
from loadbay_console.settings import ConsoleSettings
from loadbay_platform.settings import PlatformSettings
from tests.conftest import Platform, User, make_user
from tests.ingestion.serving import Ingestion

CHROMIUM = Path(os.environ.get("LOADBAY_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("LOADBAY_SCREENSHOTS", ROOT / ".artifacts" / "console"))
# Closed network: without these, Chromium keeps calling Google's hosts and being refused.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
HAVE_CHROMIUM = CHROMIUM.exists()
LAPTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}


@dataclass
class Console:
    url: str
    user: User


ConsoleFactory = Callable[..., Awaitable[Console]]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    if not HAVE_CHROMIUM:  # make test installs it; a missing browser is a failure, not a skip
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/install-browser.sh (or make test)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


def bind() -> socket.socket:
    """A socket on a free port of 127.0.0.1 (its port known before the app is made)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def serve(
    app: object, sock: socket.socket | None = None
) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """`app` on `sock` (or a free port of 127.0.0.1), in this event loop."""
    sock = sock or bind()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            return server, task, port
        await asyncio.sleep(0.05)
    raise RuntimeError("the console did not start")


@pytest.fixture
async def console_for(platform: Platform, ingestion: Ingestion) -> AsyncIterator[ConsoleFactory]:
    """Start a console signed in as a user (its dev user), on the session's services."""
    started: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(user: User, **overrides: Any) -> Console:
        settings = ConsoleSettings(
            **overrides,
            reload_url=platform.urls["reload"],
            loader_url=platform.urls["loader"],
            distribution_url=platform.urls["distribution"],
            ingestion_url=ingestion.url,
            dev_user_id=user.user_id,
            dev_user_email=user.email,
        )
        app = create_app(settings, PlatformSettings(auth=platform.settings.auth, dev_mode=True))
        server, task, port = await serve(app)
        started.append((server, task))
        return Console(f"http://127.0.0.1:{port}", user)

    yield start
    for server, task in started:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def page(browser: object) -> AsyncIterator[object]:
    context = await browser.new_context(viewport=LAPTOP)  # type: ignore[attr-defined]
    context.set_default_timeout(15_000)
    page = await context.new_page()
    # Script errors and content-security-policy refusals fail the test that caused them.
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    try:
        yield page
    finally:
        await context.close()
    assert problems == []


@pytest.fixture
def user(platform: Platform) -> User:
    return make_user(platform.settings, "ann")


async def shot(page: object, name: str) -> Path:
    """A full-page screenshot for people to look at (SCREENSHOTS/<name>.png)."""
    await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the screenshots are, so people look at them."""
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.glob("*.png")):
        terminalreporter.write_line(f"console screenshots: {SCREENSHOTS}")
