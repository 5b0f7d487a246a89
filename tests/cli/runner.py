"""Running the `loadbay` command as a user does: in a subprocess, with its exit code, stdout
and stderr apart."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "loadbay_cli"]


async def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, within: float = 120
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(process.communicate(), within)
    return process.returncode or 0, out.decode(), err.decode()
