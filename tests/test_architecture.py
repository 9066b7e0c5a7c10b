"""The layer rules of docs/architecture.md, for the whole tree: which package may import which, that
pure modules stay pure, and that no venue is named in shared code (a venue lives in its adapter module,
its simulator module and one registry line)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "monitoring", "collectors", "processor", "storage", "api", "simulator", "cryptostock")
MAY_IMPORT = {
    "core": {"core"},
    "monitoring": {"core", "monitoring"},
    "collectors": {"core", "monitoring", "collectors"},
    "processor": {"core", "monitoring", "processor"},  # monitoring: the service's metrics and tracing
    "storage": {"core", "monitoring", "storage"},
    "api": {"core", "monitoring", "api"},
    "simulator": {"core", "monitoring", "simulator"},
    "cryptostock": set(PACKAGES),  # the composition root
}
# Pure logic: no event loop, sockets, databases, HTTP or metrics.
PURE = ("core", "processor", "collectors/gaps.py", "collectors/exchanges", "core/open_gaps.py")
# The task supervisor every stage runs its tasks under: it uses the event loop, and does no I/O. The
# processor's service (bus, store, cache, metrics, tracing) around its pure pipeline: named one by one,
# so that any other processor module stays pure.
PROCESSOR_SERVICE = {"processor/service.py", "processor/warm_up.py", "processor/reporting.py"}
NOT_PURE = {"core/supervisor.py", *PROCESSOR_SERVICE}
IMPURE_MODULES = {
    "asyncio", "socket", "ssl", "sqlite3", "asyncpg", "redis", "aiohttp", "httpx", "websockets", "picows",
    "prometheus_client", "uvicorn", "fastapi", "monitoring",
}  # fmt: skip
VENUE_NAME = re.compile(r"\b(binance|coinbase|okx|kraken|bybit)\b", re.IGNORECASE)
VENUE_HOMES = ("collectors/exchanges/", "simulator/venues/", "simulator/binance/")
REGISTRIES = {"collectors/registry.py", "simulator/venues/__init__.py"}
# Known exceptions, each with its reason. The API may not import the collectors' registry, so its default
# exchange and its OpenAPI examples name one.
VENUE_NAMED_ANYWAY = {"api/settings.py", "api/schemas.py"}


def modules(package: str) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        yield str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path))


def imported(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_each_package_imports_only_what_its_layer_may() -> None:
    broken = [
        f"{name} imports {module}"
        for package in PACKAGES
        for name, tree in modules(package)
        for module in imported(tree)
        if module.split(".")[0] in PACKAGES and module.split(".")[0] not in MAY_IMPORT[package]
    ]
    assert broken == []


def test_pure_modules_import_no_io_and_no_metrics() -> None:
    broken = []
    for package in PACKAGES:
        for name, tree in modules(package):
            if not name.startswith(PURE) or name in NOT_PURE:
                continue
            broken += [f"{name} imports {m}" for m in imported(tree) if m.split(".")[0] in IMPURE_MODULES]
    assert broken == []


def test_the_processor_service_modules_exist() -> None:
    """An exception for a module that is gone would let a new module of that name be impure unnoticed."""
    assert all((ROOT / name).is_file() for name in NOT_PURE)


def _docstrings(tree: ast.Module) -> set[int]:
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)]
    nodes += [n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef)]
    return {
        id(node.body[0].value)
        for node in nodes
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }


def test_no_venue_is_named_in_shared_code() -> None:
    """String values (not docstrings or comments, which may say which venue does what) outside a venue's
    own modules and the registries."""
    named = []
    for package in PACKAGES:
        for name, tree in modules(package):
            if name.startswith(VENUE_HOMES) or name in REGISTRIES | VENUE_NAMED_ANYWAY:
                continue
            docs = _docstrings(tree)
            named += [
                f"{name}:{node.lineno} {node.value[:60]!r}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and VENUE_NAME.search(node.value)
            ]
    assert named == []


MODULE_LINES = 420  # "about 400" (docs/architecture.md): a module past this wants splitting by concern


def test_every_module_is_under_about_400_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for package in (*PACKAGES, "scripts")
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MODULE_LINES
    ]
    assert long == []
