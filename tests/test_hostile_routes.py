"""Every route of the reload and distribution APIs, read from their OpenAPI, given hostile
path values and bodies: a 4xx (or a 2xx) every time, never a 5xx.

Not here: an unpaired surrogate (``"\\ud800"`` in JSON), which every service still answers
with 500 while rendering the 422 (the platform's HTTP layer, not these services)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import Platform, User

VALUES = ["a%00b", "x" * 5000, "..", "99999999999999999999999", "ws_a_b"]


def bodies(v: str) -> list[Any]:
    v = v.replace("%00", "\u0000")
    return [
        None,
        {"name": v, "domain": v, "bucket": v, "client_id": v, "file_ids": [v], "cron": v,
         "columns": [{"name": "a", "type": "text"}], "description": v, "prefix": v},
        [v],
    ]  # fmt: skip


async def test_no_route_answers_5xx_to_hostile_values(platform: Platform, alice: User) -> None:
    failures = []
    headers = {**alice.headers, "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=30) as http:
        for service in ("reload", "distribution"):
            base = platform.urls[service]
            spec = (await http.get(base + "/openapi.json")).json()
            for path, operations in spec["paths"].items():
                for method, operation in operations.items():
                    names = [
                        p["name"] for p in operation.get("parameters", []) if p["in"] == "path"
                    ]
                    for value in VALUES:
                        url = path
                        for name in names:
                            url = url.replace("{" + name + "}", value)
                        for body in bodies(value):
                            content = None if body is None else json.dumps(body)
                            r = await http.request(
                                method.upper(), base + url, headers=headers, content=content
                            )
                            if r.status_code >= 500:
                                failures.append((service, method, url[:60], r.status_code))
    assert failures == []
