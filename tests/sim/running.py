"""Running ``hereabouts simulate`` as a process, as the tests of the command and of its
report in a browser do."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from hereabouts.sim import scenario as scenarios

COMMAND = (sys.executable, "-m", "hereabouts.cli", "simulate")

SMALL = ("fleet-start", "--nodes", "50")
"""A shipped scenario at a size that runs in seconds."""

NO_PLAZA = "the plaza simulator and its fleet-start scenario are not in this checkout"


def plaza_ready() -> bool:
    """Whether the plaza simulator and the fleet-start scenario are installed."""
    if importlib.util.find_spec("hereabouts.sim.plaza") is None:
        return False
    try:
        return "fleet-start" in scenarios.shipped()
    except OSError:  # no scenario shipped at all: the folder is missing
        return False


def simulate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``hereabouts simulate ARGS`` with stdin, stdout and stderr not terminals."""
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=300)
