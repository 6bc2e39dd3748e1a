"""Every counter exported on /metrics has a sentence for its help, not its name respelled."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.registry import CollectorRegistry

import hereabouts
from hereabouts.metrics import HELP, Counters

SOURCE = Path(hereabouts.__file__).parent


def _module(path: Path) -> str:
    return ".".join(("hereabouts", *path.relative_to(SOURCE).with_suffix("").parts))


def _names(path: Path, method: str) -> Iterator[str]:
    """First arguments of ``<...counters>.<method>(...)`` calls in ``path``: string literals,
    and module-level constants resolved by importing the module."""
    module = None
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == method
            and ast.unparse(node.func.value).endswith("counters")
            and node.args
        ):
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            yield first.value
        elif isinstance(first, ast.Name):
            module = module or importlib.import_module(_module(path))
            value = getattr(module, first.id, None)
            if isinstance(value, str):
                yield value


def described() -> set[str]:
    names = set(HELP)
    for path in SOURCE.rglob("*.py"):
        names.update(_names(path, "describe"))
    from hereabouts.peers.mesh.runtime import COUNTER_HELP as MESH_HELP
    from hereabouts.sites.hub import HUB_COUNTERS
    from hereabouts.sites.metrics import HELP as SITE_HELP

    return names | set(HUB_COUNTERS) | set(SITE_HELP) | set(MESH_HELP)


def test_every_counter_the_code_adds_has_a_sentence() -> None:
    used = {name for path in SOURCE.rglob("*.py") for name in _names(path, "add")}
    assert {"events_out", "publish_failed", "events_in"} <= used, "the scan finds counters"
    assert sorted(used - described()) == []


def test_help_texts_are_sentences() -> None:
    for name, (text, label) in HELP.items():
        assert text[0].isupper() and text.endswith("."), name
        assert text.lower() != name.replace("_", " "), name
        assert label.isidentifier()


def test_the_export_uses_the_sentence() -> None:
    counters = Counters()
    counters.add("events_out", "chau")
    counters.add("something_new")
    registry = CollectorRegistry()
    counters.register(registry)
    families = {family.name: family for family in registry.collect()}
    assert families["hereabouts_events_out"].documentation == HELP["events_out"][0]
    assert families["hereabouts_something_new"].documentation == (
        "Count of something new, by kind."
    )
