"""Small process and port helpers shared by the embedded stack's servers (stack.py, pgembed.py),
and `ServerProcess`, a server subprocess the stack started.

Every helper acts on one PID and checks, where it can, that the PID is still the process that
was started (by its start time), so a reused PID is never signalled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = [
    "HOST",
    "StackError",
    "create_time",
    "free_port",
    "is_listening",
    "process_alive",
    "read_tail",
    "terminate_pid",
]

_log = logging.getLogger(__name__)

HOST = "127.0.0.1"
LOG_TAIL_LINES = 40
STOP_GRACE_S = 5.0


class StackError(RuntimeError):
    """A server of the embedded stack failed to start (or the state dir cannot be used).

    ``service`` is one of ``kafka``, ``postgres``, ``s3``, ``smtp`` or ``stack``; ``log_tail``
    holds the last lines of that server's log (also part of the message).
    """

    def __init__(self, service: str, message: str, log_tail: str = "") -> None:
        self.service = service
        self.log_tail = log_tail
        text = f"{service}: {message}"
        if log_tail:
            text += f"\n--- last lines of the {service} log ---\n{log_tail}"
        super().__init__(text)


# Below Linux's ephemeral range (32768-60999): a server started again on its port after a
# crash (the fault lab kills and restarts services, PostgreSQL and the broker) cannot find it
# taken meanwhile by some process's outgoing connection, which a port from the kernel can be.
SERVER_PORTS = range(20000, 32768)


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that was free a moment ago (the caller must cope with a race)."""
    for port in random.sample(SERVER_PORTS, 50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # in use: another one
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))  # the range is crowded: any port the kernel gives
        found: int = sock.getsockname()[1]
        return found


def read_tail(path: os.PathLike[str] | str, offset: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path`` written after byte ``offset`` ("" if unreadable)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(offset, size - 16384)
            fh.seek(start)
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def process_alive(pid: int, started: float | None = None) -> bool:
    """True if ``pid`` runs (zombies count as gone) and, if given, started at ``started``."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started is not None and abs(float(proc.create_time()) - started) > 1.0:
            return False
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True
    return True


def create_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch), or None if it is gone."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def is_listening(pid: int, port: int) -> bool:
    """True once process ``pid`` itself listens on TCP ``port`` (not some other process)."""
    try:
        proc = psutil.Process(pid)
        get_conns = getattr(proc, "net_connections", None) or proc.connections
        conns = get_conns(kind="tcp")
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # cannot inspect: fall back to "the port answers"
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return True
        except OSError:
            return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)


def terminate_pid(pid: int, started: float | None, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM ``pid`` (if it is still the process that started at ``started``), then KILL."""
    if not process_alive(pid, started):
        return
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        try:
            proc.wait(grace)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(grace)
    except psutil.NoSuchProcess:
        pass
    except psutil.Error as exc:
        _log.warning("could not stop pid %s: %s", pid, exc)


@dataclass
class ServerProcess:
    """A server subprocess started by the stack."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log_offset: int
    create_time: float | None = None

    def tail(self) -> str:
        return read_tail(self.log_path, self.log_offset)

    def stop(self, *, kill: bool = False, grace: float = STOP_GRACE_S) -> None:
        """Stop by PID: SIGTERM (or SIGKILL with ``kill``), SIGKILL after ``grace`` seconds."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(grace)
