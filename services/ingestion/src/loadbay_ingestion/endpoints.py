"""Where connections may send requests: public addresses only, unless an operator allows more.

A connection's `endpoint_url` is user input, and the service signs requests to it: pointed at
`127.0.0.1:<port>` or the cloud metadata address it would probe the service's own network. So
an endpoint must be `http(s)://host[:port][/path]` (no user info, query or fragment) whose host
is, and resolves to, public addresses only. Loopback, link-local (169.254.169.254), private
(RFC 1918, ULA), shared, unspecified, multicast and reserved addresses, and their IPv4-mapped
IPv6 forms, are refused unless `LOADBAY_INGESTION_ALLOWED_ENDPOINTS` lists the host (with or
without a port) or a network containing the address.

The check runs when a connection is created or changed (`check_endpoint`, resolving the host)
and again at every connection the S3 client opens (`GuardedResolver`), so a name that resolves
elsewhere later (DNS rebinding) is refused at connect time too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from loadbay_platform.errors import Unprocessable

SETTING = "LOADBAY_INGESTION_ALLOWED_ENDPOINTS"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_DEFAULT_PORTS = {"http": 80, "https": 443}


class EndpointRefused(Unprocessable):
    """A connection endpoint loadbay may not send requests to (the message says which rule)."""


def _refusal(what: str, rule: str) -> EndpointRefused:
    return EndpointRefused(
        f"endpoint_url refused: {what} {rule}. Connections reach public addresses only; an"
        f" operator may allow an endpoint in {SETTING} (host, host:port or CIDR)"
    )


def address_rule(address: IPAddress) -> str | None:
    """Why requests must not go to `address` (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:  # ::ffff:127.0.0.1, 2002:7f00:1:: reach the IPv4 address
            return address_rule(embedded)
    checks = (
        ("is_unspecified", "is the unspecified address"),
        ("is_loopback", "is a loopback address"),
        ("is_link_local", "is a link-local address (cloud metadata: 169.254.169.254)"),
        ("is_multicast", "is a multicast address"),
        ("is_reserved", "is a reserved address"),
        ("is_private", "is a private address"),
    )  # fmt: skip
    for attribute, rule in checks:
        if getattr(address, attribute):
            return rule
    if not address.is_global:
        return "is not a globally routable address"
    return None


@dataclass(frozen=True)
class EndpointPolicy:
    """The operator's exceptions: hosts (any port, or one port) and networks."""

    hosts: frozenset[tuple[str, int | None]] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_setting(cls, entries: Iterable[str]) -> EndpointPolicy:
        hosts: set[tuple[str, int | None]] = set()
        networks = []
        for raw in entries:
            entry = raw.strip()
            if "/" in entry:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            parsed = urlsplit(f"//{entry}")
            if not parsed.hostname:
                raise ValueError(f"{SETTING}: {entry!r} is not host, host:port or CIDR")
            hosts.add((parsed.hostname.lower(), parsed.port))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        return (host, None) in self.hosts or (host, port) in self.hosts

    def allows_address(self, address: IPAddress, port: int) -> bool:
        return self.allows_host(str(address), port) or any(
            address in network for network in self.networks
        )

    def check_address(self, host: str, address: IPAddress, port: int) -> None:
        rule = address_rule(address)
        if rule is not None and not self.allows_address(address, port):
            what = (
                f"host {host}"
                if host.strip("[]") == str(address)
                else f"host {host} resolves to {address}, which"
            )
            raise _refusal(what, rule)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    address: IPAddress | None  # when the host is an IP literal


def parse_endpoint(url: str) -> Endpoint:
    """The static rules: scheme, no user info, a host, a port; no query or fragment."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise _refusal(f"{url!r}", f"is not a valid URL ({exc})") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise _refusal(f"scheme {parts.scheme or '(none)'!r}", "is not http or https")
    if "@" in parts.netloc:
        raise _refusal("an endpoint with user info (user@host)", "is not accepted")
    if not parts.hostname:
        raise _refusal(f"{url!r}", "has no host")
    if parts.query or parts.fragment:
        raise _refusal("an endpoint with a query or fragment", "is not accepted")
    host = parts.hostname.lower()
    try:
        address: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    return Endpoint(host, port or _DEFAULT_PORTS[parts.scheme], address)


async def check_endpoint(url: str, policy: EndpointPolicy) -> None:
    """Refuse (EndpointRefused) an endpoint loadbay may not reach; resolves a host name."""
    endpoint = parse_endpoint(url)
    if policy.allows_host(endpoint.host, endpoint.port):
        return
    if endpoint.address is not None:
        policy.check_address(endpoint.host, endpoint.address, endpoint.port)
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            endpoint.host, endpoint.port, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError) as exc:
        raise _refusal(f"host {endpoint.host}", f"does not resolve ({exc})") from None
    for info in infos:
        policy.check_address(endpoint.host, ipaddress.ip_address(info[4][0]), endpoint.port)


class ConnectionGuard:
    """The S3 client's resolver and socket factory: every address it connects to is checked,
    whatever led there (a name resolving elsewhere than before, an IP literal, a redirect).

    Addresses of a host the operator allows by name are remembered (with the port) as the
    resolver returns them, so the socket factory, which sees only addresses, lets them through.
    """

    def __init__(self, policy: EndpointPolicy) -> None:
        self.policy = policy
        self.approved: set[tuple[str, int]] = set()
        self.resolver = _Resolver(self)

    def socket_factory(self, addr_info: Any) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        host, port = str(sockaddr[0]), int(sockaddr[1])
        if (host, port) not in self.approved:
            try:
                self.policy.check_address(host, ipaddress.ip_address(host), port)
            except EndpointRefused as exc:
                raise OSError(str(exc)) from None
        return socket.socket(family=family, type=kind, proto=proto)

    def connector_args(self) -> dict[str, Any]:
        """aiobotocore `AioConfig(connector_args=...)`."""
        return {"resolver": self.resolver, "socket_factory": self.socket_factory}


class _Resolver(AbstractResolver):
    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: AbstractResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:  # built on first use: it binds the running loop
            self._inner = DefaultResolver()
        found = await self._inner.resolve(host, port, family)
        if self._guard.policy.allows_host(host, port):
            self._guard.approved.update((r["host"], r["port"]) for r in found)
        return found

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
