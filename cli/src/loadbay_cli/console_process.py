"""The web console as a process of `loadbay dev`: `python -m loadbay_console`, pointed at the
services' URLs, in dev mode (it signs every visitor in as the dev user)."""

from __future__ import annotations

import sys

CONSOLE = "console"
# The services whose APIs the console shows (the notifier has none for people).
SHOWN = ("reload", "loader", "distribution", "ingestion")


def console_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "loadbay_console", "--port", str(port)]


def console_env(urls: dict[str, str], user: tuple[str, str], port: int) -> dict[str, str]:
    """Where the console finds each service's API, who it signs in as, and its own URL."""
    env = {f"LOADBAY_CONSOLE_{name.upper()}_URL": urls[name] for name in SHOWN if name in urls}
    env["LOADBAY_CONSOLE_DEV_USER_ID"], env["LOADBAY_CONSOLE_DEV_USER_EMAIL"] = user
    env["LOADBAY_CONSOLE_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    return env
