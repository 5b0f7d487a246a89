"""Outbound requests only where allowed: a connection's endpoint_url may not point at loopback,
private, link-local or other non-public addresses (SSRF), unless the operator allows it.

The refused endpoints are never contacted: a listener on another local port proves it for
127.0.0.1; the other addresses are refused before any socket is opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from loadbay_ingestion.endpoints import (
    ConnectionGuard,
    EndpointPolicy,
    EndpointRefused,
    address_rule,
    check_endpoint,
    parse_endpoint,
)
from tests.conftest import User
from tests.ingestion.conftest import REGION, Remote, bind, create_connection, finished_run, unique

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0

    def handle(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.close()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener()
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        server.close()
        await server.wait_closed()


async def create(api: httpx.AsyncClient, user: User, endpoint: str) -> httpx.Response:
    return await api.post(
        "/connections",
        json={"name": unique("c"), "bucket": "bucket-x", "access_type": "access_keys",
              "region": REGION, "endpoint_url": endpoint, "access_key_id": "AKIAEXAMPLE",
              "secret_access_key": SECRET},
        headers=user.headers,
    )  # fmt: skip


REFUSED = {
    "http://127.0.0.1:{port}": "loopback",
    "http://localhost:{port}": "localhost resolves to",
    "http://2130706433:{port}": "resolves to 127.0.0.1",
    "http://127.1:{port}": "resolves to 127.0.0.1",
    "http://[::1]:{port}": "loopback",
    "http://[::ffff:127.0.0.1]:{port}": "loopback",
    "http://10.0.0.1:9000": "private",
    "http://192.168.1.1": "private",
    "http://172.16.5.4": "private",
    "http://169.254.169.254/latest/meta-data": "link-local",
    "http://[fd00::1]:9000": "private",
    "http://0.0.0.0:{port}": "unspecified",
    "http://224.0.0.1": "multicast",
    "http://100.64.0.1": "not a globally routable",
    "ftp://example.com": "is not http or https",
    "http://user:pw@example.com": "user info",
    "http://": "has no host",
    "https://example.com/?x=1": "query",
}


async def test_connections_to_local_and_private_addresses_are_refused_without_traffic(
    api: httpx.AsyncClient, alice: User, listener: Listener
) -> None:
    for template, rule in REFUSED.items():
        endpoint = template.format(port=listener.port)
        response = await create(api, alice, endpoint)
        assert response.status_code == 422, (endpoint, response.text)
        message = response.json()["message"]
        assert rule in message and "LOADBAY_INGESTION_ALLOWED_ENDPOINTS" in message, message
        assert SECRET not in response.text
    assert listener.accepted == 0


async def test_an_endpoint_is_checked_on_update_and_again_before_each_use(
    api: httpx.AsyncClient, alice: User, remote: Remote, listener: Listener, db: asyncpg.Pool
) -> None:
    made = await create_connection(api, alice, remote, remote.bucket())
    name = made["name"]
    local = f"http://127.0.0.1:{listener.port}"
    patched = await api.patch(f"/connections/{name}", json={"endpoint_url": local},
                              headers=alice.headers)  # fmt: skip
    assert patched.status_code == 422 and "loopback" in patched.json()["message"]
    shown = await api.get(f"/connections/{name}", headers=alice.headers)
    assert shown.json()["endpoint_url"] == remote.endpoint_url  # unchanged
    dataset = await bind(api, alice, name)
    # A stored endpoint that is no longer allowed (the allow-list changed, or its name now
    # resolves elsewhere) is refused at use: the test and runs send nothing.
    async with db.acquire() as conn:
        await conn.execute("UPDATE connections SET endpoint_url = $2 WHERE name = $1 AND"
                           " owner_id = $3", name, local, alice.user_id)  # fmt: skip
    tested = await api.post(f"/connections/{name}/test", headers=alice.headers)
    assert tested.status_code == 422 and "loopback" in tested.json()["message"]
    started = await api.post(f"/bindings/{dataset}/runs", headers=alice.headers)
    assert started.status_code == 202, started.text
    run = await finished_run(api, alice, started.json()["run_id"])
    assert run["status"] == "failed" and "loopback" in run["reason"], run
    assert listener.accepted == 0


async def test_only_the_allowed_host_and_port_are_let_through() -> None:
    policy = EndpointPolicy.from_setting(["127.0.0.1:9000", "minio.internal", "10.1.0.0/16"])
    await check_endpoint("http://127.0.0.1:9000", policy)
    await check_endpoint("https://minio.internal:8443/", policy)  # any port, not resolved
    await check_endpoint("http://10.1.2.3:9000", policy)
    for refused in ("http://127.0.0.1:9001", "http://10.2.0.1", "http://[::1]:9000"):
        with pytest.raises(EndpointRefused):
            await check_endpoint(refused, policy)
    assert parse_endpoint("https://s3.example.com").port == 443


def test_address_rules() -> None:
    def rule(address: str) -> str | None:
        return address_rule(ipaddress.ip_address(address))

    assert rule("8.8.8.8") is None and rule("2001:4860:4860::8888") is None
    assert "loopback" in str(rule("::ffff:127.0.0.1")) and "loopback" in str(rule("::1"))
    assert "loopback" in str(rule("2002:7f00:1::"))  # 6to4 of 127.0.0.1
    assert "169.254.169.254" in str(rule("169.254.169.254"))
    assert "private" in str(rule("fc00::5")) and "reserved" in str(rule("240.0.0.1"))


def test_the_client_refuses_to_open_a_socket_to_a_refused_address() -> None:
    """What a redirect or a DNS answer that changed would reach: the socket factory of the
    S3 client refuses it before any socket exists."""
    guard = ConnectionGuard(EndpointPolicy.from_setting(["127.0.0.1:9000"]))
    inet = (socket.AF_INET, socket.SOCK_STREAM, 6, "")
    for address in (("127.0.0.1", 9001), ("10.0.0.1", 80), ("169.254.169.254", 80)):
        with pytest.raises(OSError, match="endpoint_url refused"):
            guard.socket_factory((*inet, address))
    guard.socket_factory((*inet, ("127.0.0.1", 9000))).close()  # allowed: a socket, unused
    guard.socket_factory((*inet, ("8.8.8.8", 443))).close()


async def test_a_host_allowed_by_name_is_let_through_at_its_resolved_addresses_only() -> None:
    guard = ConnectionGuard(EndpointPolicy.from_setting(["localhost:9000"]))
    inet = (socket.AF_INET, socket.SOCK_STREAM, 6, "")
    with pytest.raises(OSError):
        guard.socket_factory((*inet, ("127.0.0.1", 9000)))  # not resolved through it yet
    found = await guard.resolver.resolve("localhost", 9000, socket.AF_INET)
    assert {r["host"] for r in found} == {"127.0.0.1"}
    guard.socket_factory((*inet, ("127.0.0.1", 9000))).close()
    with pytest.raises(OSError):  # the same address on another port (a redirect) is not
        guard.socket_factory((*inet, ("127.0.0.1", 22)))
    await guard.resolver.resolve("localhost", 9001, socket.AF_INET)  # not the allowed port
    with pytest.raises(OSError):
        guard.socket_factory((*inet, ("127.0.0.1", 9001)))
    await guard.resolver.close()


async def test_a_422_never_echoes_the_secret_access_key(
    api: httpx.AsyncClient, alice: User
) -> None:
    bodies = [
        {"secret_access_key": SECRET},
        {"name": "x", "bucket": "B", "access_type": "access_keys", "region": REGION,
         "access_key_id": SECRET, "secret_access_key": SECRET},
        {"name": unique("c"), "bucket": "bucket-x", "access_type": "access_keys",
         "region": "moon-1", "secret_access_key": SECRET, "extra": SECRET},
        {"name": unique("c"), "bucket": "bucket-x", "access_type": "access_keys",
         "region": REGION, "access_key_id": "A", "secret_access_key": {"nested": SECRET}},
    ]  # fmt: skip
    for body in bodies:
        response = await api.post("/connections", json=body, headers=alice.headers)
        assert response.status_code == 422, response.text
        assert SECRET not in response.text and SECRET.split("/")[0] not in response.text
    made = await api.post("/connections", json=bodies[0], headers=alice.headers)
    patched = await api.patch(f"/connections/{unique('c')}", json={"secret_access_key": 5},
                              headers=alice.headers)  # fmt: skip
    assert SECRET not in made.text and patched.status_code in (404, 422)
