"""The stable ports of ``loadbay dev`` (``make run``), so URLs in a user's notes keep working.

Each can be moved with ``LOADBAY_DEV_<NAME>_PORT`` (0: a free port, different every run).
The tests never use these: they start every server and service on a free port.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from loadbay_cli.procs import HOST

__all__ = ["DEV_PORTS", "SERVER_NAMES", "dev_ports", "port_variable", "ports_in_use"]

# The servers first, then the services and the web console (the order of the README's table).
DEV_PORTS: dict[str, int] = {
    "kafka": 19092,
    "postgres": 15432,
    "s3": 19000,
    "smtp": 12525,
    "reload": 8701,
    "loader": 8702,
    "notifier": 8703,
    "distribution": 8704,
    "ingestion": 8705,
    "console": 8700,
}
SERVER_NAMES = ("kafka", "postgres", "s3", "smtp")


def port_variable(name: str) -> str:
    """The environment variable that moves ``name``'s port."""
    return f"LOADBAY_DEV_{name.upper()}_PORT"


def dev_ports(environ: Mapping[str, str] = os.environ) -> dict[str, int]:
    """Every server's and service's port: the default, or its ``LOADBAY_DEV_*_PORT``."""
    ports: dict[str, int] = {}
    for name, default in DEV_PORTS.items():
        variable = port_variable(name)
        raw = environ.get(variable, "").strip()
        if not raw:
            ports[name] = default
            continue
        try:
            port = int(raw)
        except ValueError:
            raise ValueError(f"{variable}={raw!r} is not a port number") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"{variable}={raw!r} is not a port number (0 to 65535)")
        ports[name] = port
    fixed = [p for p in ports.values() if p]
    if len(fixed) != len(set(fixed)):
        raise ValueError(f"two of loadbay's dev ports are the same: {ports}")
    return ports


def ports_in_use(ports: Mapping[str, int], host: str = HOST) -> dict[str, int]:
    """Those of ``ports`` (0 excepted) that something on ``host`` listens on already."""
    taken: dict[str, int] = {}
    for name, port in ports.items():
        if not port:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # as the servers themselves do: a port in TIME_WAIT is free, a listener is not
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                taken[name] = port
    return taken
