"""processor/ is pure logic: it imports core, itself, msgspec and a few stdlib modules, nothing else; except
the service modules around it, which do the I/O (tests/test_architecture.py lists them)."""

from __future__ import annotations

import ast
from pathlib import Path

import processor
from tests.test_architecture import PROCESSOR_SERVICE

ALLOWED = {
    "__future__",
    "math",
    "collections",
    "collections.abc",
    "typing",
    "msgspec",
    "decimal",
    "enum",
    "itertools",
    "operator",
}


def test_processor_imports_only_core_and_pure_stdlib() -> None:
    package = Path(processor.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert {m.name for m in modules} >= {"bars.py", "indicators.py", "features.py", "quality.py"}
    for module in modules:
        if f"processor/{module.name}" in PROCESSOR_SERVICE:
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                assert name in ALLOWED or top in {"core", "processor"}, f"{module.name} imports {name}"
