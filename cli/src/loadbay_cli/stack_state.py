"""The embedded stack's state dir: one running stack per dir in this process, and a pidfile
(``stack.pids.json``) that lets the next owner of the dir stop the servers a dead one left
running (matched by PID and process start time)."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from loadbay_cli.procs import StackError, create_time, process_alive, terminate_pid

_log = logging.getLogger(__name__)

PIDFILE = "stack.pids.json"

# State dirs in use in this process, by resolved path (guards against double use).
_ACTIVE: dict[Path, StateDir] = {}
_ACTIVE_LOCK = threading.Lock()


class Server(NamedTuple):
    """A server process the stack started, as the pidfile records it."""

    pid: int
    create_time: float | None
    port: int


class StateDir:
    """Claims ``path`` for one stack (`claim`, `release`); ``on_exit`` (the stack's stop) runs
    at interpreter exit while it is claimed."""

    def __init__(self, path: Path, on_exit: Callable[[], None]) -> None:
        self.path = path
        self._on_exit = on_exit
        self._atexit_registered = False
        self._pidfile_written = False

    def claim(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with _ACTIVE_LOCK:
            other = _ACTIVE.get(self.path)
            if other is not None and other is not self:
                raise StackError("stack", f"{self.path} is used by another running stack")
            _ACTIVE[self.path] = self
        try:
            self._reap_orphans()
        except BaseException:
            self.release()
            raise
        if not self._atexit_registered:
            atexit.register(self._on_exit)
            self._atexit_registered = True

    def release(self) -> None:
        if self._pidfile_written:  # never remove another owner's pidfile
            with contextlib.suppress(OSError):
                (self.path / PIDFILE).unlink()
            self._pidfile_written = False
        with _ACTIVE_LOCK:
            if _ACTIVE.get(self.path) is self:
                del _ACTIVE[self.path]
        if self._atexit_registered:
            atexit.unregister(self._on_exit)
            self._atexit_registered = False

    def write_pidfile(self, servers: Mapping[str, Server]) -> None:
        doc = {
            "owner": {"pid": os.getpid(), "create_time": create_time(os.getpid())},
            "processes": {name: server._asdict() for name, server in servers.items()},
        }
        path = self.path / PIDFILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(path)
        self._pidfile_written = True

    def _reap_orphans(self) -> None:
        """Stop server processes a dead previous owner of this state dir left running."""
        path = self.path / PIDFILE
        try:
            doc = json.loads(path.read_text())
            owner = doc["owner"]
            procs: dict[str, dict[str, Any]] = doc["processes"]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError):
            _log.warning("ignoring unreadable %s", path)
            return
        owner_pid = int(owner["pid"])
        if owner_pid != os.getpid() and process_alive(owner_pid, owner.get("create_time")):
            raise StackError(
                "stack", f"{self.path} is in use by the stack of running process {owner_pid}"
            )
        for name, entry in procs.items():
            pid = int(entry["pid"])
            started = entry.get("create_time")
            if started is not None and process_alive(pid, float(started)):
                _log.warning("stopping orphaned %s server (pid %s) of a dead stack", name, pid)
                terminate_pid(pid, float(started))
        with contextlib.suppress(OSError):
            path.unlink()


def migrate_legacy_pgdata(state_dir: Path) -> Path | None:
    """Move ``<state>/pgdata`` (PostgreSQL 16, from before the data dir was per major version)
    to ``<state>/pgdata-16``, where ``LOADBAY_EMBEDDED_POSTGRES=pgserver16`` finds it; the
    PostgreSQL 18 server starts on a new ``pgdata-18``. Returns the new path if it moved one."""
    legacy = state_dir / "pgdata"
    try:
        major = (legacy / "PG_VERSION").read_text().strip()
    except OSError:
        return None
    target = state_dir / f"pgdata-{major}"
    if target.exists():
        return None
    legacy.rename(target)
    _log.warning("moved the PostgreSQL %s data in %s to %s", major, legacy, target)
    return target
