"""The command line, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hereabouts.identity import public_key_from_did


def run_cli(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("HEREABOUTS_HOME", None)
    if home is not None:
        env["HEREABOUTS_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "hereabouts.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_keys_show_creates_the_identity_once_and_prints_the_did(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run_cli("keys", "show", home=home)
    assert first.returncode == 0, first.stderr
    did = first.stdout.strip()
    assert len(public_key_from_did(did)) == 32
    assert "created a new identity" in first.stderr
    second = run_cli("keys", "show", "--home", str(home))
    assert second.returncode == 0
    assert second.stdout.strip() == did
    assert "created" not in second.stderr


def test_keys_show_refuses_an_exposed_key_file_without_a_traceback(tmp_path: Path) -> None:
    run_cli("keys", "show", home=tmp_path)
    os.chmod(tmp_path / "identity.key", 0o644)
    result = run_cli("keys", "show", home=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "accessible by other users" in result.stderr


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("hereabouts ")


def test_help_is_plain_text() -> None:
    for command in ((), ("up",), ("status",), ("keys", "show"), ("network", "revoke"),
                    ("advert", "publish")):
        result = run_cli(*command, "--help")
        assert result.returncode == 0, result.stderr
        for markup in ("``", ":mod:", ":class:", ":func:", ":data:"):
            assert markup not in result.stdout, (command, markup)
