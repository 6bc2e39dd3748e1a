"""The names ``from hereabouts import ...`` offers, loaded only when used."""

from __future__ import annotations

import subprocess
import sys

import pytest

import hereabouts


def test_every_public_name_imports_from_the_package() -> None:
    assert set(hereabouts.__all__) == {*hereabouts._PUBLIC, "__version__"}
    for name in hereabouts._PUBLIC:
        assert getattr(hereabouts, name) is not None, name
    from hereabouts import Node, PresenceManager, production  # the README's way

    assert Node.__module__ == "hereabouts.peers.node"
    assert PresenceManager.__module__ == "hereabouts.sites.manager"
    assert production().node.http_port == 8765


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        hereabouts.Nope  # noqa: B018


def test_importing_the_package_loads_no_runtime() -> None:
    """The command line imports the package first; its help must not wait for aiomqtt."""
    code = "import hereabouts, sys; print('aiomqtt' in sys.modules or 'uvicorn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False"
