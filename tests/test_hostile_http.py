"""Hostile HTTP input against the real services: oversized bodies (declared and chunked), NUL
and unpaired surrogates in paths, JSON and tokens, JSON nested 200,000 deep, 422 bodies that
would echo a secret; and what every service's OpenAPI says about it. Each gets a clear 4xx from
the platform's request guard and handlers (libs/platform), never a 500."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from loadbay_ingestion.app import IngestionService
from loadbay_platform.auth import mint_token
from loadbay_platform.settings import AuthSettings, HttpSettings, PlatformSettings
from loadbay_reload.app import ReloadService
from tests.conftest import GRAPH_USERS, Platform, User
from tests.platform import raw_http
from tests.platform.serving import HttpOnly, serving


def graph_user(user: User) -> User:
    """The same person as one of the loader's graph users (who may start bulk loads)."""
    return User(GRAPH_USERS[0], user.email, mint_token(AuthSettings(), GRAPH_USERS[0], user.email))


def message(body: dict[str, Any]) -> str:
    """An error body's text: the platform's `detail`, or Neptune's on the bulk loader."""
    return str(body.get("detail") or body["detailedMessage"])


MiB = 1024 * 1024
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETKEY"

# One JSON route of each service that has one: (method, path).
JSON_ROUTES = {
    "reload": "/datasets",
    "ingestion": "/connections",
    "loader": "/loader",
    "distribution": "/data-products",
}
# A path with a NUL character on each service.
NUL_PATHS = {
    "reload": "/datasets/d%00x/orders",
    "ingestion": "/connections/a%00b",
    "loader": "/loader/a%00b",
    "distribution": "/data-products/p%00q",
    "notifier": "/emails?limit=%00",
}


@pytest.fixture(scope="module")
async def ingestion_url(settings: PlatformSettings) -> AsyncIterator[str]:
    async with serving(HttpOnly(IngestionService(dev_mode=settings.dev_mode)), settings) as url:
        yield url


@pytest.fixture(scope="module")
async def urls(platform: Platform, ingestion_url: str) -> dict[str, str]:
    return {**platform.urls, "ingestion": ingestion_url}


@pytest.fixture(scope="module")
async def small_reload(settings: PlatformSettings) -> AsyncIterator[str]:
    """A reload service whose limits are small enough to pass with a real upload."""
    small = settings.model_copy(
        update={"http": HttpSettings(max_body_bytes=64 * 1024, max_upload_bytes=2 * MiB)}
    )
    async with serving(HttpOnly(ReloadService()), small) as url:
        yield url


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def pieces(total: int, size: int = 64 * 1024, fill: bytes = b" ") -> Iterator[bytes]:
    """`total` bytes of a JSON-ish body, made as sent: never held whole."""
    yield b'{"description": "'
    piece = fill * size
    for _ in range(total // size):
        yield piece


async def _post(url: str, path: str, user: User, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        headers = {**user.headers, **kwargs.pop("headers", {})}
        return await http.post(path, headers=headers, **kwargs)


# -- request size ------------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["reload", "ingestion", "loader"])
async def test_a_declared_body_over_the_limit_is_refused_unread(
    urls: dict[str, str], alice: User, service: str
) -> None:
    before = rss_bytes()
    answer = await raw_http.send(
        urls[service], "POST", JSON_ROUTES[service],
        {**alice.headers, "Content-Type": "application/json", "Content-Length": str(64 * MiB)},
        pieces(64 * MiB),
    )  # fmt: skip

    assert answer.status == 413, answer.text
    detail = message(json.loads(answer.body))
    assert "1 MiB" in detail and "LOADBAY_HTTP__MAX_BODY_BYTES" in detail
    assert answer.bytes_sent < 8 * MiB  # answered at once, not after the body
    assert rss_bytes() - before < 16 * MiB


@pytest.mark.parametrize("service", ["reload", "ingestion", "loader", "distribution"])
async def test_a_chunked_body_is_counted_and_cut_off(
    urls: dict[str, str], alice: User, service: str
) -> None:
    before = rss_bytes()
    answer = await raw_http.send(
        urls[service], "POST", JSON_ROUTES[service],
        {**alice.headers, "Content-Type": "application/json"},
        pieces(64 * MiB), chunked=True,
    )  # fmt: skip

    assert answer.status == 413, answer.text
    assert "LOADBAY_HTTP__MAX_BODY_BYTES" in message(json.loads(answer.body))
    assert answer.bytes_sent < 16 * MiB
    assert rss_bytes() - before < 16 * MiB  # the issue measured +700 MiB for 64 MiB of JSON


async def _dataset(url: str, user: User) -> tuple[str, str]:
    domain, name = f"d_{uuid.uuid4().hex[:8]}", f"ds_{uuid.uuid4().hex[:8]}"
    body = {"domain": domain, "name": name, "columns": [{"name": "id", "type": "integer"}]}
    made = await _post(url, "/datasets", user, json=body)
    assert made.status_code == 201, made.text
    return domain, name


async def test_uploads_have_their_own_larger_limit(urls: dict[str, str], alice: User) -> None:
    domain, name = await _dataset(urls["reload"], alice)
    csv = b"id\n" + b"1\n" * MiB  # 2 MiB: over the JSON limit, far under the upload limit
    path = f"/datasets/{domain}/{name}/files"

    uploaded = await _post(urls["reload"], path, alice, files={"files": ("big.csv", csv)})
    too_big = await raw_http.send(
        urls["reload"], "POST", path,
        {**alice.headers, "Content-Type": "multipart/form-data; boundary=x",
         "Content-Length": str(6 * 1024**3)},
    )  # fmt: skip

    assert uploaded.status_code == 201, uploaded.text
    assert too_big.status == 413
    detail = json.loads(too_big.body)["detail"]
    assert "5 GiB" in detail and "LOADBAY_HTTP__MAX_UPLOAD_BYTES" in detail


@pytest.mark.parametrize("service", ["reload", "loader"])
async def test_multipart_to_a_route_without_uploads_gets_the_body_limit(
    urls: dict[str, str], alice: User, service: str
) -> None:
    # Such a route would read the whole body into memory: the larger limit is not for it.
    user = graph_user(alice) if service == "loader" else alice
    answer = await raw_http.send(
        urls[service], "POST", JSON_ROUTES[service],
        {**user.headers, "Content-Type": "multipart/form-data; boundary=x"},
        pieces(8 * MiB), chunked=True,
    )  # fmt: skip

    assert answer.status == 413, answer.text
    assert "LOADBAY_HTTP__MAX_BODY_BYTES" in message(json.loads(answer.body))


async def test_a_chunked_upload_over_its_limit_is_cut_off_and_lands_nothing(
    small_reload: str, alice: User
) -> None:
    domain, name = await _dataset(small_reload, alice)
    path = f"/datasets/{domain}/{name}/files"
    head = b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.csv"\r\n\r\nid\n'

    def upload() -> Iterator[bytes]:
        yield head
        for _ in range(64):  # 8 MiB of rows, limit 2 MiB
            yield b"1\n" * 65536

    answer = await raw_http.send(
        small_reload, "POST", path,
        {**alice.headers, "Content-Type": "multipart/form-data; boundary=x"},
        upload(), chunked=True,
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=small_reload) as http:
        files = await http.get(path, headers=alice.headers)

    assert answer.status == 413, answer.text
    assert "2 MiB" in message(json.loads(answer.body))
    assert files.status_code == 200 and files.json() == []


# -- NUL and untranslatable characters ---------------------------------------------------------


@pytest.mark.parametrize("service", sorted(NUL_PATHS))
async def test_nul_in_the_url_is_a_400(urls: dict[str, str], alice: User, service: str) -> None:
    async with httpx.AsyncClient(base_url=urls[service]) as http:
        answer = await http.get(NUL_PATHS[service], headers=alice.headers)

    assert answer.status_code == 400, answer.text
    assert "NUL character" in message(answer.json())


@pytest.mark.parametrize(
    ("service", "body"),
    [
        ("reload", '{"domain": "d_x", "name": "abc", "description": "a\\u0000b", "columns": []}'),
        ("ingestion", '{"name": "c\\u0000x", "bucket": "b", "region": "us-east-1"}'),
        ("loader", '{"source": "s3://loadbay-lz/x\\u0000.csv", "format": "csv"}'),
        ("distribution", '{"name": "p\\u0000"}'),
    ],
)
async def test_nul_in_json_is_a_400(
    urls: dict[str, str], alice: User, service: str, body: str
) -> None:
    answer = await _post(
        urls[service], JSON_ROUTES[service], alice,
        content=body, headers={"Content-Type": "application/json"},
    )  # fmt: skip

    assert answer.status_code == 400, answer.text
    assert "NUL character (\\u0000)" in message(answer.json())


@pytest.mark.parametrize("service", ["reload", "ingestion", "loader"])
async def test_an_unpaired_surrogate_in_json_is_a_400(
    urls: dict[str, str], alice: User, service: str
) -> None:
    body = '{"name": "x\\ud800y", "description": "\\ud83d\\ude00 fine", "source": "s3://b/\\udc00"}'
    answer = await _post(
        urls[service], JSON_ROUTES[service], alice,
        content=body, headers={"Content-Type": "application/json"},
    )  # fmt: skip

    assert answer.status_code == 400, answer.text
    assert "unpaired UTF-16 surrogate (\\ud800)" in message(answer.json())


def forged_claims_token(settings: PlatformSettings, **claims: Any) -> str:
    """A validly signed token whose claims a hostile issuer chose."""
    now = int(time.time())
    body = {"iat": now, "exp": now + 600, **claims}
    return jwt.encode(body, settings.auth.secret.get_secret_value(), algorithm="HS256")


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "alice\x00", "email": "alice@example.com"},
        {"sub": "alice", "email": "al\x00ice@example.com"},
        {"sub": "bob\ud800", "email": "bob@example.com"},
        {"sub": "eve\n", "email": "eve@example.com"},
        {"sub": "x" * 1000, "email": "long@example.com"},
    ],
    ids=["nul-sub", "nul-email", "surrogate-sub", "newline-sub", "long-sub"],
)
@pytest.mark.parametrize("service", ["reload", "ingestion", "loader", "notifier"])
async def test_a_token_with_control_characters_is_a_401(
    urls: dict[str, str], settings: PlatformSettings, service: str, claims: dict[str, str]
) -> None:
    token = forged_claims_token(settings, **claims)
    path = {"reload": "/datasets", "ingestion": "/connections", "loader": "/loader"}
    async with httpx.AsyncClient(base_url=urls[service]) as http:
        answer = await http.get(
            path.get(service, "/emails"), headers={"Authorization": f"Bearer {token}"}
        )

    assert answer.status_code == 401, answer.text
    assert "invalid token" in answer.text


def test_a_lone_surrogate_survives_into_a_token_as_the_test_assumes() -> None:
    # The surrogate case above is only meaningful if PyJWT hands the claim through as is.
    token = jwt.encode({"sub": "\ud800"}, "k" * 32, algorithm="HS256")
    payload = token.split(".")[1]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert json.loads(raw)["sub"] == "\ud800"


# -- deep JSON ---------------------------------------------------------------------------------

DEEP = "[" * 200_000 + "]" * 200_000


@pytest.mark.parametrize("service", sorted(JSON_ROUTES))
@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
async def test_json_nested_200000_deep_is_a_400(
    urls: dict[str, str], alice: User, service: str, content_type: str
) -> None:
    answer = await _post(
        urls[service], JSON_ROUTES[service], alice,
        content=DEEP, headers={"Content-Type": content_type},
    )  # fmt: skip

    assert answer.status_code == 400, answer.text
    detail = message(answer.json())
    assert "nested deeper than 64 levels" in detail and "LOADBAY_HTTP__MAX_JSON_DEPTH" in detail


async def test_brackets_inside_strings_do_not_count(urls: dict[str, str], alice: User) -> None:
    domain, name = f"d_{uuid.uuid4().hex[:8]}", f"ds_{uuid.uuid4().hex[:8]}"
    body = {
        "domain": domain, "name": name, "description": '[{"\\' + "[" * 5_000,
        "columns": [{"name": "id", "type": "integer"}],
    }  # fmt: skip
    made = await _post(urls["reload"], "/datasets", alice, json=body)

    assert made.status_code == 201, made.text


# -- 422 bodies --------------------------------------------------------------------------------


async def test_a_422_does_not_echo_the_secret_access_key(urls: dict[str, str], alice: User) -> None:
    bodies = [
        # missing fields: pydantic's error input is the whole submitted object
        {"access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET},
        # a wrong type for the secret itself
        {"name": "conn_x", "bucket": "b-x1", "access_type": "access_keys", "region": "us-east-1",
         "secret_access_key": {"value": SECRET}},
        # an unknown field next to it
        {"name": "conn_x", "bucket": "b-x1", "access_type": "access_keys", "region": "us-east-1",
         "access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET, "password": SECRET},
    ]  # fmt: skip
    for body in bodies:
        answer = await _post(urls["ingestion"], "/connections", alice, json=body)

        assert answer.status_code == 422, answer.text
        assert SECRET not in answer.text
        errors = answer.json()["detail"]
        assert errors and all("loc" in e and "msg" in e for e in errors)


async def test_a_422_of_another_service_keeps_fastapis_shape(
    urls: dict[str, str], alice: User
) -> None:
    body = {"domain": "d_x", "name": "abc", "columns": [{"name": "a", "type": "money"}],
            "secret_token": SECRET}  # fmt: skip
    answer = await _post(urls["reload"], "/datasets", alice, json=body)

    assert answer.status_code == 422, answer.text
    assert SECRET not in answer.text
    inputs = {tuple(e["loc"]): e.get("input") for e in answer.json()["detail"]}
    # The secret-like field's value is left out; a plain wrong value is still shown.
    assert inputs == {("body", "secret_token"): None, ("body", "columns", 0, "type"): "money"}


# -- OpenAPI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["reload", "ingestion", "loader", "notifier", "distribution"])
async def test_openapi_declares_bearer_security_and_the_error_schema(
    urls: dict[str, str], service: str
) -> None:
    async with httpx.AsyncClient(base_url=urls[service]) as http:
        spec = (await http.get("/openapi.json")).json()

    components = spec["components"]
    assert components["securitySchemes"]["HTTPBearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": components["securitySchemes"]["HTTPBearer"]["description"],
    }  # fmt: skip
    # One schema for both shapes: the platform's `detail` and a service's `error`/`message`.
    assert set(components["schemas"]["Error"]["properties"]) == {"detail", "error", "message"}
    operations = [
        (path, op) for path, item in spec["paths"].items() for op in item.values()
    ]  # fmt: skip
    assert operations
    for path, op in operations:
        assert op["security"] == [{"HTTPBearer": []}], path
        assert {"400", "401", "413", "422"} <= op["responses"].keys(), path
        unauthorized = op["responses"]["401"]["content"]["application/json"]["schema"]
        # The loader answers in Neptune's error shape, as Neptune clients expect.
        schema = "NeptuneErrorBody" if service == "loader" else "Error"
        assert unauthorized == {"$ref": f"#/components/schemas/{schema}"}, path
