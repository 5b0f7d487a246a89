"""Cheap checks that keep the architecture honest: services share code only through libs/,
and SQL lives in one place per service."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The web console is a package under services/ too, but it owns no data: it has no schema and
# talks to the services only over their HTTP APIs (test_the_console_uses_only_http_apis).
CONSOLE = "console"
SERVICES = sorted(
    p.name for p in (ROOT / "services").iterdir() if (p / "src").is_dir() and p.name != CONSOLE
)
SQL = re.compile(
    r"^\s*(SELECT\s|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|SCHEMA)"
    r"|DROP\s+(TABLE|SCHEMA)|ALTER\s+TABLE|TRUNCATE\s|LOCK\s+TABLE|WITH\s+\w+\s+AS)"
)
# Where SQL may be written: each service's repository (or a part's store), the platform's own
# tables, and the loader's warehouse DDL/COPY module.
SQL_HOMES = {
    *("repository.py", "store.py", "db.py", "outbox.py", "consumer.py", "tabular.py"),
    "work_queue.py",
}
SQL_HOME_SUFFIXES = ("_repository.py", "_store.py")


def python_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.py") if "migrations" not in p.parts]


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_services_do_not_import_each_other() -> None:
    offenders = []
    for service in SERVICES:
        others = {f"loadbay_{s}" for s in SERVICES if s != service}
        for path in python_files(ROOT / "services" / service):
            if bad := imported_modules(path) & others:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []


def full_imports(path: Path) -> set[str]:
    """Every module `path` imports, dotted in full (`from a.b import c` gives a.b and a.b.c)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_loader_s_parts_stay_apart() -> None:
    """The loader's parts: loadbay_loader.graph and the reload and workspace paths share only
    the streaming of source objects, the settings and the service's wiring (app.py); the
    reload and workspace paths share the warehouse's typed tables, not each other's code."""
    loader = ROOT / "services" / "loader" / "src" / "loadbay_loader"
    shared = ("loadbay_loader.streaming", "loadbay_loader.settings", "loadbay_loader.graph")
    offenders = []
    for path in python_files(loader / "graph"):
        mine = {m for m in full_imports(path) if m.startswith("loadbay_loader")}
        if bad := {m for m in mine if not m.startswith(shared) and m != "loadbay_loader"}:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    for path in python_files(loader):
        if "graph" in path.relative_to(loader).parts or path.name == "app.py":
            continue
        if bad := {m for m in full_imports(path) if m.startswith("loadbay_loader.graph")}:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    for part, other in (("reload", "workspace"), ("workspace", "reload")):
        for path in python_files(loader / part):
            if bad := {m for m in full_imports(path) if m.startswith(f"loadbay_loader.{other}")}:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []


def test_the_console_uses_only_http_apis() -> None:
    """No service's code, no database, broker or object store: what the console shows is what
    the APIs answer the signed-in user. Of the platform it uses only auth (dev tokens), logs,
    the shared HTTP metrics, secrets and settings."""
    forbidden = {f"loadbay_{s}" for s in SERVICES} | {
        "loadbay_cli", "asyncpg", "aiokafka", "aiobotocore", "boto3", "faststream",
    }  # fmt: skip
    allowed_platform = {"auth", "logs", "metrics", "secrets", "settings"}
    offenders = []
    for path in python_files(ROOT / "services" / CONSOLE):
        if bad := imported_modules(path) & forbidden:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
        platform = {
            m.split(".")[1] for m in full_imports(path) if m.startswith("loadbay_platform.")
        }
        if bad := platform - allowed_platform:
            offenders.append(f"{path.relative_to(ROOT)} imports loadbay_platform {sorted(bad)}")
    assert offenders == []


def test_libs_do_not_import_services() -> None:
    services = {f"loadbay_{s}" for s in SERVICES} | {"loadbay_cli", f"loadbay_{CONSOLE}"}
    offenders = [
        str(path.relative_to(ROOT))
        for path in python_files(ROOT / "libs")
        if imported_modules(path) & services
    ]
    assert offenders == []


def test_sql_lives_only_in_its_homes() -> None:
    offenders = []
    for folder in (ROOT / "services", ROOT / "libs"):
        for path in python_files(folder):
            if path.name in SQL_HOMES or path.name.endswith(SQL_HOME_SUFFIXES):
                continue
            tree = ast.parse(path.read_text())
            docstrings = {
                id(n.value)
                for n in ast.walk(tree)
                if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
            }
            for node in ast.walk(tree):
                if (
                    id(node) not in docstrings
                    and isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and SQL.match(node.value)
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_every_service_has_its_migrations() -> None:
    for service in SERVICES:
        folder = ROOT / "services" / service / "src" / f"loadbay_{service}" / "migrations"
        assert sorted(folder.glob("0001_*.sql")), f"{service} has no first migration"
