"""The services' HTTP APIs, called with the signed-in user's bearer token.

The console shows what an API answered for that user and nothing more: a 403 or 404 is shown
as the API worded it, never worked around. Path segments are quoted, so a name typed into a
form can never reach another route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

SERVICES = ("reload", "loader", "ingestion", "distribution")
# The most of an error body shown to a person.
MAX_MESSAGE_CHARS = 4000


class BackendError(Exception):
    """An API refused a request (status >= 400), or did not answer (status 503)."""

    def __init__(self, service: str, status: int, message: str) -> None:
        super().__init__(message)
        self.service = service
        self.status = status
        self.message = message


def seg(value: object) -> str:
    """One path segment, quoted: '/', '?', '#' and '..' stay inside it."""
    return quote(str(value), safe="")


def error_message(response: httpx.Response) -> str:
    """What went wrong, as the API said it: loadbay's `message`, FastAPI's `detail` (a text or
    a list of validation errors) or Neptune's `detailedMessage`."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:MAX_MESSAGE_CHARS] or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("message", "detailedMessage"):
            if isinstance(body.get(key), str):
                return str(body[key])[:MAX_MESSAGE_CHARS]
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail[:MAX_MESSAGE_CHARS]
        if isinstance(detail, list):
            return "; ".join(_validation_error(e) for e in detail)[:MAX_MESSAGE_CHARS]
    return str(body)[:MAX_MESSAGE_CHARS]


def _validation_error(error: object) -> str:
    if not isinstance(error, dict):
        return str(error)
    where = ".".join(str(p) for p in error.get("loc", []) if p != "body")
    return f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", ""))


@dataclass
class Backend:
    """The APIs as one user sees them."""

    http: httpx.AsyncClient
    urls: dict[str, str]
    token: str

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        files: list[tuple[str, tuple[str, Any, str]]] | None = None,
        content: AsyncIterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """The API's JSON answer (None for an empty one); `BackendError` for a refusal."""
        kwargs: dict[str, Any] = {}
        if timeout_s is not None:
            kwargs["timeout"] = timeout_s
        try:
            response = await self.http.request(
                method,
                self.urls[service] + path,
                json=json,
                params=params,
                files=files,
                content=content,
                headers={**(headers or {}), "Authorization": f"Bearer {self.token}"},
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise BackendError(
                service, 503, f"the {service} service did not answer ({type(exc).__name__})"
            ) from exc
        if response.status_code >= 400:
            raise BackendError(service, response.status_code, error_message(response))
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise BackendError(
                service, 502, "the service answered with something not JSON"
            ) from exc

    async def get(self, service: str, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return await self.call(service, "GET", path, params=clean or None)

    async def post(self, service: str, path: str, body: Any = None) -> Any:
        return await self.call(service, "POST", path, json=body)

    async def put(self, service: str, path: str, body: Any = None) -> Any:
        return await self.call(service, "PUT", path, json=body)

    async def delete(self, service: str, path: str) -> Any:
        return await self.call(service, "DELETE", path)
