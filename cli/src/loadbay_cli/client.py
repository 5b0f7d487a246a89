"""A small HTTP client for the CLI: finds the services and the token, turns errors into
messages a person can act on."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import psutil

STACK_FILE = Path(".loadbay") / "stack.json"


class CliError(Exception):
    pass


def read_stack(path: Path = STACK_FILE) -> dict[str, Any]:
    """What `loadbay dev` wrote about the running platform; {} if it is not running."""
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    owner = data.get("owner")
    if isinstance(owner, dict) and not _alive(owner.get("pid"), owner.get("started")):
        raise CliError(
            f"the platform is not running ({path} is left from a run that was stopped):"
            " start it with 'make run', or point the CLI elsewhere with --url"
        )
    return data


def _alive(pid: object, started: object) -> bool:
    if not isinstance(pid, int):
        return True  # not ours to judge
    try:
        proc = psutil.Process(pid)
        return not isinstance(started, int | float) or abs(proc.create_time() - started) < 0.01
    except psutil.Error:
        return False


def service_url(service: str, override: str | None = None) -> str:
    """The service's base URL: --url, then LOADBAY_<SERVICE>_URL, then .loadbay/stack.json."""
    url = override or os.environ.get(f"LOADBAY_{service.upper()}_URL")
    url = url or read_stack().get("services", {}).get(service)
    if not url:
        raise CliError(
            f"where is the {service} service? Start the platform with 'make run', or set"
            f" LOADBAY_{service.upper()}_URL, or pass --url"
        )
    return str(url).rstrip("/")


def token(override: str | None = None) -> str:
    found = override or os.environ.get("LOADBAY_TOKEN") or read_stack().get("token")
    if not found:
        raise CliError(
            "no token: set LOADBAY_TOKEN (mint one with 'loadbay token') or pass --token"
        )
    return str(found)


class Api:
    def __init__(self, service: str, url: str | None, token_: str | None) -> None:
        self.http = httpx.Client(
            base_url=service_url(service, url),
            headers={"Authorization": f"Bearer {token(token_)}"},
            timeout=httpx.Timeout(30.0, read=600.0),
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                message = body.get("message") or body.get("detail") or body
            except ValueError:
                message = response.text
            raise CliError(f"{response.status_code}: {message}")
        return response.json() if response.content else None
