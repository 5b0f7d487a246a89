"""The shared error handlers, behind what the request guard sees: text PostgreSQL cannot store,
text that is not encodable, recursion, and 422s that would echo what was sent. A small app made
by create_app, against the session's real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel, model_validator

from loadbay_platform.http import create_app
from loadbay_platform.settings import AuthSettings

SECRET = "hunter2-correct-horse-battery-staple"


class Login(BaseModel):
    user: str
    password: str
    attempts: int = 0

    @model_validator(mode="after")
    def _not_the_user(self) -> Login:
        if self.password == self.user:
            raise ValueError("the password may not be the user name")
        return self


def app_on(conn: asyncpg.Connection) -> FastAPI:
    async def ready() -> None:
        return None

    app = create_app("probe", AuthSettings(), ready, title="probe", description="probe")

    @app.post("/store")
    async def store(request: Request) -> dict[str, Any]:
        # application/octet-stream: the guard does not read it as JSON, so what it would
        # refuse reaches the database here.
        data = json.loads(await request.body())
        text = await conn.fetchval("SELECT $1::text", data.get("text", ""))
        document = await conn.fetchval("SELECT $1::jsonb::text", data.get("json", "null"))
        return {"text": text, "json": document}

    @app.post("/login")
    async def login(body: Login) -> dict[str, str]:
        return {"user": body.user}

    return app


@pytest.fixture
async def probe(warehouse: asyncpg.Connection) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_on(warehouse))
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        yield client


async def _store(probe: httpx.AsyncClient, body: str) -> httpx.Response:
    return await probe.post(
        "/store", content=body, headers={"Content-Type": "application/octet-stream"}
    )


async def test_text_postgres_cannot_store_is_a_400(probe: httpx.AsyncClient) -> None:
    fine = await _store(probe, '{"text": "caf\\u00e9", "json": "{\\"a\\": 1}"}')
    nul_text = await _store(probe, '{"text": "a\\u0000b"}')
    nul_json = await _store(probe, '{"json": "{\\"a\\": \\"\\\\u0000\\"}"}')

    assert fine.status_code == 200 and fine.json() == {"text": "café", "json": '{"a": 1}'}
    for answer in (nul_text, nul_json):
        assert answer.status_code == 400, answer.text
        assert "cannot be stored" in answer.json()["detail"]


async def test_unencodable_text_is_a_400(probe: httpx.AsyncClient) -> None:
    answer = await _store(probe, '{"text": "\\ud800"}')

    assert answer.status_code == 400, answer.text
    assert "cannot be encoded as UTF-8" in answer.json()["detail"]


async def test_recursion_is_a_400(probe: httpx.AsyncClient) -> None:
    answer = await _store(probe, "[" * 100_000 + "]" * 100_000)

    assert answer.status_code == 400, answer.text
    assert answer.json() == {"detail": "the request is nested too deeply"}


@pytest.mark.parametrize(
    "body",
    [
        {"password": SECRET},  # missing user: the error's input is the whole object
        {"user": "u", "password": {"value": SECRET}},  # the secret field, wrong type
        {"user": "u", "password": 123, "token": SECRET},
        {"user": SECRET, "password": SECRET},  # a model-level error
        [SECRET],  # not an object at all
    ],
)
async def test_a_422_never_echoes_a_secret(probe: httpx.AsyncClient, body: Any) -> None:
    answer = await probe.post("/login", json=body)

    assert answer.status_code == 422, answer.text
    assert SECRET not in answer.text and "123" not in answer.text
    errors = answer.json()["detail"]
    assert errors and all({"type", "loc", "msg"} <= e.keys() for e in errors)


async def test_a_422_still_shows_a_plain_wrong_value(probe: httpx.AsyncClient) -> None:
    answer = await probe.post("/login", json={"user": "u", "password": SECRET, "attempts": "many"})

    assert answer.status_code == 422, answer.text
    assert SECRET not in answer.text
    [error] = answer.json()["detail"]
    assert (error["loc"], error["input"]) == (["body", "attempts"], "many")
