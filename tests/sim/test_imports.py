"""The command line must not need the simulator's extra: ``hereabouts up`` on a node
without numpy and matplotlib works, and no command pays for loading them."""

from __future__ import annotations

import subprocess
import sys


def test_the_command_line_loads_neither_numpy_nor_matplotlib() -> None:
    code = (
        "import sys, hereabouts.cli\n"
        "hereabouts.cli.build_parser()\n"
        "heavy = sorted(m for m in ('numpy', 'matplotlib') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


def test_the_mesh_simulator_is_still_reachable_from_the_package() -> None:
    import hereabouts.sim as sim

    assert sim.MeshSim.__name__ == "MeshSim"
