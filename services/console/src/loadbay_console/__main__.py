"""`python -m loadbay_console --port N`: the console on 127.0.0.1 (or --host)."""

from __future__ import annotations

import argparse

import uvicorn

from loadbay_console.app import create_app
from loadbay_platform import logs
from loadbay_platform.settings import PlatformSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="loadbay-console", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700)
    args = parser.parse_args()
    platform = PlatformSettings()
    logs.configure("console", platform.log_level)  # JSON lines, as every service logs
    app = create_app(platform=platform)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
