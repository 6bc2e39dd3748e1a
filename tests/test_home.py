"""One process per home: the lock, as Python and the command line meet it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hereabouts.config import resolve_home
from hereabouts.errors import ConfigError, LocalError
from hereabouts.home import LOCK_FILE_NAME, HomeInUse, HomeLock, hold_home
from hereabouts.peers.node import Node
from tests.adversarial.processes import UpProcess
from tests.fixtures.mosquitto import free_port
from tests.peers.support import test_config
from tests.test_cli import run_cli

pytestmark = pytest.mark.timeout(120)

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hereabouts.home import hold_home
    lock = hold_home(Path(sys.argv[1]))
    print("held", flush=True)
    time.sleep(120)
    """
)


def holder(home: Path) -> subprocess.Popen[str]:
    """Another process holding ``home`` (it says so once it does)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(home)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def stop(process: subprocess.Popen[str], signum: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(signum)
    process.wait(30)
    if process.stdout is not None:
        process.stdout.close()


def test_a_held_home_is_refused_naming_the_holder(tmp_path: Path) -> None:
    process = holder(tmp_path)
    try:
        with pytest.raises(HomeInUse) as refused:
            hold_home(tmp_path)
        assert refused.value.pid == process.pid
        assert f"PID {process.pid}" in str(refused.value) and "--home" in str(refused.value)
        assert isinstance(refused.value, LocalError)
    finally:
        stop(process)
    hold_home(tmp_path).release()  # free once the holder has gone


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    stop(holder(tmp_path), signal.SIGKILL)
    assert (tmp_path / LOCK_FILE_NAME).exists(), "the file stays; only the flock mattered"
    with HomeLock(tmp_path) as lock:
        assert lock.held
        assert (tmp_path / LOCK_FILE_NAME).read_text().strip() == str(os.getpid())


def test_two_locks_in_one_process_conflict_and_release_frees(tmp_path: Path) -> None:
    first = hold_home(tmp_path / "new" / "home")  # created on the way, mode 0700
    assert (tmp_path / "new" / "home").stat().st_mode & 0o777 == 0o700
    with pytest.raises(HomeInUse, match="another node of this process"):
        hold_home(tmp_path / "new" / "home")
    first.release()
    hold_home(tmp_path / "new" / "home").release()


async def test_node_on_a_held_home_raises_a_typed_error_and_releases_on_stop(
    tmp_path: Path,
) -> None:
    config = test_config(tmp_path, broker_port=free_port())  # nothing listens: no matter
    process = holder(tmp_path)
    try:
        with pytest.raises(HomeInUse):
            async with Node(config):
                pass
    finally:
        stop(process)
    # Held by a node of this process: a second node is refused; once it stops, it is free.
    first = Node(config)
    await first.start()
    try:
        with pytest.raises(HomeInUse, match="another node of this process"):
            await Node(config).start()
    finally:
        await first.stop()
    hold_home(tmp_path).release()


def test_a_file_as_home_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        resolve_home(afile)
    with pytest.raises(ConfigError, match="lies under"):
        resolve_home(afile / "below")
    monkeypatch.setenv("HEREABOUTS_HOME", str(afile))
    with pytest.raises(ConfigError, match=r"\$HEREABOUTS_HOME"):
        resolve_home()


def test_commands_that_write_a_held_home_say_who_holds_it(tmp_path: Path) -> None:
    assert run_cli("keys", "show", home=tmp_path).returncode == 0  # the key exists now
    process = holder(tmp_path)
    try:
        for command in (
            ("network", "init", "--name", "alpha"),
            ("network", "join", str(tmp_path / "credential.json")),
            ("network", "revoke", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"),
        ):
            result = run_cli(*command, home=tmp_path)
            assert result.returncode == 2, (command, result.stderr)
            assert result.stderr.count("\n") == 1, result.stderr
            assert f"(PID {process.pid})" in result.stderr and "--home" in result.stderr
        # Reading needs no lock: the DID of a running node can always be asked for.
        assert run_cli("keys", "show", home=tmp_path).returncode == 0
        assert run_cli("network", "show", home=tmp_path).returncode == 0
    finally:
        stop(process)


def test_keys_show_creating_a_key_needs_the_home(tmp_path: Path) -> None:
    process = holder(tmp_path)
    try:
        result = run_cli("keys", "show", home=tmp_path)
        assert result.returncode == 2
        assert f"(PID {process.pid})" in result.stderr
        assert not (tmp_path / "identity.key").exists()
    finally:
        stop(process)


async def test_a_second_up_on_a_held_home_names_the_first(tmp_path: Path) -> None:
    """Even on the first one's HTTP port (make run twice), the home is what it is told."""
    first = UpProcess(tmp_path, "--no-sites")
    async with first:
        second = subprocess.run(
            [sys.executable, "-m", "hereabouts.cli", "up", "--home", str(tmp_path),
             "--http", f"127.0.0.1:{first.http_port}", "--broker-port", str(free_port())],
            capture_output=True, text=True, timeout=60,
        )
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1, second.stderr
        assert f"in use by another hereabouts process (PID {first.pid})" in second.stderr
        assert "--home" in second.stderr


def test_advert_publish_runs_beside_a_holder_but_creates_no_key_under_it(tmp_path: Path) -> None:
    publish = ("advert", "publish", "--endpoint", "api=https://example.org/api",
               "--merkle-root", "sha256:" + "0" * 64)
    fresh = tmp_path / "fresh"
    process = holder(fresh)
    try:
        refused = run_cli(*publish, home=fresh)
        assert refused.returncode == 2 and f"(PID {process.pid})" in refused.stderr
        assert not (fresh / "identity.key").exists()
    finally:
        stop(process)
    used = tmp_path / "used"
    assert run_cli("keys", "show", home=used).returncode == 0
    process = holder(used)
    try:  # a running node serves what is published next to it
        published = run_cli(*publish, home=used)
        assert published.returncode == 0, published.stderr
    finally:
        stop(process)
