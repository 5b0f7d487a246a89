"""A small HTTP client for the CLI: finds the services and the token, turns errors into
messages a person can act on (one line each: never a traceback or a dump of a response)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import psutil

STACK_FILE = Path(".loadbay") / "stack.json"


class CliError(Exception):
    """What went wrong, for the person at the terminal; the command exits non-zero."""


def read_stack(path: Path = STACK_FILE) -> dict[str, Any]:
    """What `loadbay dev` wrote about the running platform; {} if it is not running."""
    if not path.exists():
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path} ({exc}): start the platform with 'make run'") from exc
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


def error_message(response: httpx.Response) -> str:
    """A 4xx/5xx answer as one line: the service's own message, whichever shape it has
    (Neptune's `code`/`detailedMessage`, loadbay's `error`/`message`, FastAPI's `detail`)."""
    try:
        body = response.json()
    except ValueError:
        body = response.text.strip() or response.reason_phrase
    if isinstance(body, dict):
        if body.get("detailedMessage"):
            text = f"{body['detailedMessage']} ({body.get('code', 'error')})"
        elif body.get("message"):
            text = str(body["message"])
        elif "detail" in body:
            text = _detail(body["detail"])
        else:
            text = "; ".join(f"{k}: {v}" for k, v in body.items())
    else:
        text = str(body)
    return " ".join(f"{text} (HTTP {response.status_code})".split())


def _detail(detail: Any) -> str:
    """FastAPI's `detail`: a string, or a list of {loc, msg} validation errors."""
    if not isinstance(detail, list):
        return str(detail)
    problems = []
    for problem in detail:
        if not isinstance(problem, dict):
            problems.append(str(problem))
            continue
        where = [str(p) for p in problem.get("loc", []) if p not in ("body", "query", "path")]
        message = str(problem.get("msg", "invalid"))
        problems.append(f"{'.'.join(where)}: {message}" if where else message)
    return "invalid request: " + "; ".join(problems)


class Api:
    def __init__(self, service: str, url: str | None, token_: str | None) -> None:
        self.service = service
        self.from_stack = not (url or os.environ.get(f"LOADBAY_{service.upper()}_URL"))
        base = service_url(service, url)
        try:
            self.http = httpx.Client(
                base_url=base,
                headers={"Authorization": f"Bearer {token(token_)}"},
                timeout=httpx.Timeout(30.0, read=600.0),
            )
        except httpx.InvalidURL as exc:
            raise CliError(f"{base!r} is not a {service} service URL: {exc}") from exc

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise CliError(
                f"the {self.service} service at {self.http.base_url} did not answer in time"
                f" ({type(exc).__name__})"
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise CliError(self._unreachable(exc)) from exc
        if response.status_code >= 400:
            raise CliError(error_message(response))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(
                f"the {self.service} service at {self.http.base_url} answered something that"
                f" is not JSON (HTTP {response.status_code}): is --url the {self.service}"
                " service's?"
            ) from exc

    def _unreachable(self, exc: Exception) -> str:
        reason = str(exc) or type(exc).__name__
        where = f"cannot reach the {self.service} service at {self.http.base_url} ({reason})"
        if self.from_stack:
            return (
                f"{where}: the platform in {STACK_FILE} is not answering; is 'make run'"
                " still running?"
            )
        return f"{where}: is it running? Check --url or LOADBAY_{self.service.upper()}_URL"
