"""Scenario files: what to simulate, written as TOML.

A scenario is a small TOML file. Three keys are common to every kind::

    kind = "plaza"            # plaza | mesh | sites: which simulator runs it
    description = "..."       # one sentence, shown in the report
    nodes = 1000              # the default size (``--nodes`` overrides it)
    seed = 1                  # the default seed (``--seed`` overrides it)

Everything else belongs to the kind and is documented with its simulator
(:mod:`hereabouts.sim.plaza`, :mod:`hereabouts.sim.mesh_scenario`,
:mod:`hereabouts.sim.sites`). Unknown keys are an error, so a typo never silently runs the
default. The shipped library lives in ``hereabouts/sim/scenarios/``; ``hereabouts simulate
NAME`` finds a shipped one by name, and any other argument is read as a path.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, cast

from hereabouts.errors import ConfigError

Kind = Literal["plaza", "mesh", "sites"]
KINDS: Final[tuple[Kind, ...]] = ("plaza", "mesh", "sites")

MAX_NODES: Final = 100_000
"""Largest ``nodes`` accepted: beyond it no run finishes in reasonable time on one core."""

MAX_SCENARIO_BYTES: Final = 64 * 1024
"""A scenario is a few dozen lines; anything larger is not one."""


class ScenarioError(ConfigError):
    """A scenario file that cannot be used: missing, not TOML, or with a bad setting."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario as read: its name, kind, and the kind's settings (still raw TOML values)."""

    name: str
    kind: Kind
    description: str
    nodes: int
    seed: int
    settings: Mapping[str, Any]
    """Every key but the common ones, as TOML gave them."""
    text: str
    """The file exactly as read, for the report."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run a scenario: overrides from the command line, and where to say how far."""

    nodes: int | None = None
    seed: int | None = None
    progress: Callable[[float], None] | None = None
    """Called now and then with the share done, in ``[0, 1]``."""


def shipped() -> list[str]:
    """Names of the scenarios shipped with hereabouts, sorted."""
    folder = resources.files("hereabouts.sim") / "scenarios"
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def load(name_or_path: str) -> Scenario:
    """A shipped scenario by name, else the TOML file at that path."""
    if name_or_path in shipped():
        resource = resources.files("hereabouts.sim") / "scenarios" / f"{name_or_path}.toml"
        return parse(resource.read_text(encoding="utf-8"), name=name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ScenarioError(
            f"no scenario named {name_or_path!r} and no such file; shipped scenarios: "
            + ", ".join(shipped())
        )
    data = path.read_bytes()
    if len(data) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{path}: larger than {MAX_SCENARIO_BYTES} bytes, not a scenario")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return parse(text, name=path.stem, where=str(path))


def parse(text: str, *, name: str, where: str | None = None) -> Scenario:
    """Read a scenario from its TOML text."""
    where = where or name
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{where}: not valid TOML: {exc}") from None
    kind = data.pop("kind", None)
    if kind not in KINDS:
        raise ScenarioError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    description = data.pop("description", "")
    if not isinstance(description, str):
        raise ScenarioError(f"{where}: description must be text")
    nodes = _count(data.pop("nodes", 100), f"{where}: nodes", low=2, high=MAX_NODES)
    seed = _count(data.pop("seed", 1), f"{where}: seed", low=0, high=2**63 - 1)
    return Scenario(
        name=name,
        kind=cast(Kind, kind),
        description=description,
        nodes=nodes,
        seed=seed,
        settings=data,
        text=text,
    )


def _count(value: object, what: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScenarioError(f"{what} must be a whole number from {low:,} to {high:,}")
    return value


class Settings:
    """Typed reading of a scenario's settings, with one clear error per bad value.

    ``take`` pops each known key as it is read; :meth:`done` then refuses whatever is left,
    so a misspelt key is an error rather than a silent default.
    """

    def __init__(self, values: Mapping[str, Any], where: str) -> None:
        self._values = dict(values)
        self._where = where

    def section(self, key: str) -> Settings:
        """A table of settings (``[plaza]``); an empty one if absent."""
        value = self._values.pop(key, {})
        if not isinstance(value, dict):
            raise ScenarioError(f"{self._where}: [{key}] must be a table")
        return Settings(value, f"{self._where} [{key}]")

    def sections(self, key: str) -> list[Settings]:
        """An array of tables (``[[outage]]``); empty if absent."""
        value = self._values.pop(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ScenarioError(f"{self._where}: [[{key}]] must be an array of tables")
        return [Settings(v, f"{self._where} [[{key}]] #{i + 1}") for i, v in enumerate(value)]

    def number(
        self, key: str, default: float, *, low: float = 0.0, high: float = float("inf")
    ) -> float:
        value = self._values.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{self._where}: {key} must be a number, got {value!r}")
        if not low <= value <= high:
            raise ScenarioError(f"{self._where}: {key} must be from {low:g} to {high:g}")
        return float(value)

    def optional_number(
        self, key: str, *, low: float = 0.0, high: float = float("inf")
    ) -> float | None:
        """A number, or None when the key is absent (the reader derives the default)."""
        if key not in self._values:
            return None
        return self.number(key, 0.0, low=low, high=high)

    def whole(self, key: str, default: int, *, low: int = 0, high: int = 2**31) -> int:
        value = self._values.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{self._where}: {key} must be a whole number, got {value!r}")
        if not low <= value <= high:
            raise ScenarioError(f"{self._where}: {key} must be from {low:,} to {high:,}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._values.pop(key, default)
        if not isinstance(value, bool):
            raise ScenarioError(f"{self._where}: {key} must be true or false")
        return value

    def choice(self, key: str, default: str, options: tuple[str, ...]) -> str:
        value = self._values.pop(key, default)
        if value not in options:
            raise ScenarioError(f"{self._where}: {key} must be one of {', '.join(options)}")
        return str(value)

    def done(self) -> None:
        """Refuse keys nobody read."""
        if self._values:
            keys = ", ".join(sorted(self._values))
            raise ScenarioError(f"{self._where}: unknown setting(s): {keys}")


__all__ = [
    "KINDS",
    "Kind",
    "RunOptions",
    "Scenario",
    "ScenarioError",
    "Settings",
    "load",
    "parse",
    "shipped",
]
