"""The core stays sans-I/O: no module under core/ imports asyncio, socket, time or random."""

from __future__ import annotations

import ast
from pathlib import Path

import hereabouts.core

FORBIDDEN = {"asyncio", "socket", "time", "random"}
CORE = Path(hereabouts.core.__file__).parent


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_modules_import_no_io_clock_or_randomness() -> None:
    modules = sorted(CORE.rglob("*.py"))
    assert modules, "core/ has no modules to check"
    offenders = {
        str(path.relative_to(CORE)): sorted(imported_roots(path) & FORBIDDEN) for path in modules
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_the_check_itself_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom time import monotonic\nimport asyncio.tasks\n")
    assert imported_roots(sample) & FORBIDDEN == {"time", "asyncio"}
