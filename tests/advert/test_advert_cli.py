"""``hereabouts advert`` end to end, run as a real subprocess with a temporary home."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hereabouts.advert.http import create_app
from hereabouts.advert.store import PresenceStore
from hereabouts.advert.timestamps import format_time
from tests.advert.conftest import run_cli as run
from tests.advert.conftest import serve

EMPTY_ROOT = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
RELAY_DID = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"


def test_publish_then_verify(tmp_path: Path) -> None:
    home = tmp_path / "home"
    index = tmp_path / "index.txt"
    index.write_text("first entry\nsecond entry\n")
    published = run(
        "advert", "publish", "--alias", "main",
        "--endpoint", "mcp=https://node.example.org:7733",
        "--endpoint", "presence=https://node.example.org/.well-known/hn/presence",
        "--relay", f"{RELAY_DID}=https://relay.example@2025-01-01T12:10:00Z",
        "--ttl", "600", "--index", str(index), "--issued-at", "2025-01-01T11:50:00Z",
        home=home,
    )
    assert published.returncode == 0, published.stderr
    path = home / "presence" / "main" / "20250101T115000Z.json"
    assert path.is_file() and str(path) in published.stdout
    doc = json.loads(path.read_text())
    assert doc["relays"] == [{"host": RELAY_DID, "url": "https://relay.example",
                              "expires_at": "2025-01-01T12:10:00Z"}]
    assert doc["ttl_seconds"] == 600 and doc["expires_at"] == "2025-01-01T12:00:00Z"

    ok = run("advert", "verify", str(path), "--at", "2025-01-01T11:55:00Z", home=home)
    assert ok.returncode == 0, ok.stderr
    assert "valid presence@2 document" in ok.stdout and doc["did"] in ok.stdout

    late = run("advert", "verify", str(path), "--at", "2025-01-01T12:00:00Z", home=home)
    assert late.returncode == 1 and "presence_expired" in late.stderr

    with index.open("a") as handle:
        handle.write("third entry\n")
    again = run("advert", "publish", "--alias", "main", "--endpoint", "mcp=https://n.example",
                "--index", str(index), "--issued-at", "2025-01-01T11:58:00Z", home=home)
    assert again.returncode == 0, again.stderr
    assert "consistency proof from 2 to 3 leaves" in again.stdout
    second = home / "presence" / "main" / "20250101T115800Z.json"
    checked = run("advert", "verify", str(second), "--at", "2025-01-01T11:58:01Z", home=home)
    assert checked.returncode == 0 and "grew from 2 to 3" in checked.stdout

    shown = run("advert", "show", "--alias", "main", home=home)
    assert shown.returncode == 0 and json.loads(shown.stdout)["issued_at"] == (
        "2025-01-01T11:58:00Z")
    listing = run("advert", "show", home=home)
    assert listing.returncode == 0 and listing.stdout.startswith("main\t")


def test_tampered_file_fails(tmp_path: Path) -> None:
    home = tmp_path / "home"
    root = "sha256:" + "ab" * 32
    assert run("advert", "publish", "--merkle-root", root, "--endpoint", "x=http://a.example",
               "--issued-at", "2025-01-01T11:50:00Z", home=home).returncode == 0
    path = home / "presence" / "default" / "20250101T115000Z.json"
    doc = json.loads(path.read_text())
    doc["endpoints"]["x"] = "http://evil.example"
    path.write_text(json.dumps(doc))
    result = run("advert", "verify", str(path), "--at", "2025-01-01T11:51:00Z", home=home)
    assert result.returncode == 1 and "presence_bad_signature" in result.stderr


def test_verify_url_against_real_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # The CLI verifies with the real clock, so this document is issued now.
    issued = format_time(datetime.now(UTC))
    assert run("advert", "publish", "--merkle-root", "sha256:" + "cd" * 32, "--endpoint",
               "mcp=https://n.example", "--issued-at", issued, home=home).returncode == 0
    with serve(create_app(store=PresenceStore(home))) as url:
        result = run("advert", "verify", url + "/.well-known/hn/presence", home=home)
        assert result.returncode == 0, result.stderr
        missing = run("advert", "verify", url + "/nothing-here", home=home)
        assert missing.returncode == 1 and "presence_fetch_failed" in missing.stderr


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("keys", "show", home=home).returncode == 0  # so no "created" line follows
    cases = [
        ["advert", "publish", "--merkle-root", "sha256:00", "--endpoint", "x=https://a.example"],
        ["advert", "publish", "--merkle-root", "sha256:" + "0" * 64, "--endpoint", "nonsense"],
        ["advert", "publish", "--merkle-root", "sha256:" + "0" * 64, "--endpoint", "x=ftp://a"],
        ["advert", "publish", "--merkle-root", "sha256:" + "0" * 64, "--alias", "../up"],
        ["advert", "publish", "--index", str(tmp_path / "missing")],
        ["advert", "publish", "--merkle-root", "sha256:" + "0" * 64, "--relay", "did:x"],
        ["advert", "publish", "--merkle-root", "sha256:" + "0" * 64, "--ttl", "0"],
        ["advert", "verify", str(tmp_path / "missing.json")],
        ["advert", "verify", str(tmp_path), "--at", "yesterday"],
        ["advert", "show", "--alias", "nothing"],
    ]
    for args in cases:
        result = run(*args, home=home)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{]")
    result = run("advert", "verify", str(garbage), home=home)
    assert result.returncode == 1 and "presence_malformed" in result.stderr


def test_issued_at_defaults_to_now(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run("advert", "publish", "--merkle-root", "sha256:" + "0" * 64, home=home)
    assert result.returncode == 0, result.stderr
    (path,) = (home / "presence" / "default").glob("*.json")
    assert run("advert", "verify", str(path), home=home).returncode == 0


def test_publish_without_an_index_uses_the_empty_index(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run("advert", "publish", "--alias", "web", "--endpoint",
                 "api=https://example.org/api", "--ttl", "600", home=home)
    assert result.returncode == 0, result.stderr
    assert EMPTY_ROOT in result.stdout and "empty index" in result.stdout
    assert "/.well-known/hn/presence/web" in result.stdout  # where `up` serves it
    (path,) = (home / "presence" / "web").glob("*.json")
    assert json.loads(path.read_text())["merkle_root"] == EMPTY_ROOT
    # A later publish from a real index links to the empty one: it only grew.
    index = tmp_path / "index.txt"
    index.write_text("one\ntwo\n")
    issued = format_time(datetime.now(UTC) + timedelta(seconds=2))
    grown = run("advert", "publish", "--alias", "web", "--endpoint", "api=https://example.org/api",
                "--index", str(index), "--issued-at", issued, home=home)
    assert grown.returncode == 0, grown.stderr
    assert "consistency proof from 0 to 2 leaves" in grown.stdout


def test_verify_accepts_a_ttl_spelled_as_a_float(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("advert", "publish", "--merkle-root", "sha256:" + "ab" * 32, "--endpoint",
               "x=http://a.example", "--issued-at", "2025-01-01T11:50:00Z",
               home=home).returncode == 0
    path = home / "presence" / "default" / "20250101T115000Z.json"
    text = path.read_text()
    assert '"ttl_seconds":600' in text
    path.write_text(text.replace('"ttl_seconds":600', '"ttl_seconds":600.0'))
    result = run("advert", "verify", str(path), "--at", "2025-01-01T11:51:00Z", home=home)
    assert result.returncode == 0, result.stderr


def test_show_names_every_document_it_leaves_out(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for stamp in ("2025-01-01T11:50:00Z", "2025-01-01T11:51:00Z", "2025-01-01T11:52:00Z"):
        assert run("advert", "publish", "--merkle-root", "sha256:" + "ab" * 32, "--endpoint",
                   "x=http://a.example", "--issued-at", stamp, home=home).returncode == 0
    folder = home / "presence" / "default"
    forged = folder / "20250101T115200Z.json"
    doc = json.loads(forged.read_text())
    forged.write_text(json.dumps({**doc, "endpoints": {"x": "http://evil.example"}}))
    broken = folder / "20250101T115100Z.json"
    broken.write_text("{not json")

    listing = run("advert", "show", home=home)
    assert listing.returncode == 0, listing.stderr
    (line,) = listing.stdout.splitlines()
    assert line.startswith("default\t2025-01-01T11:50:00Z\t")
    skipped = listing.stderr.splitlines()
    assert len(skipped) == 2, listing.stderr
    assert str(forged) in skipped[0] and "presence_bad_signature" in skipped[0]
    assert str(broken) in skipped[1] and "presence_malformed" in skipped[1]

    one = run("advert", "show", "--alias", "default", home=home)
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["issued_at"] == "2025-01-01T11:50:00Z"
    assert len(one.stderr.splitlines()) == 2 and "presence_bad_signature" in one.stderr


def test_publishing_again_at_once_follows_the_previous_issue(tmp_path: Path) -> None:
    """A newcomer who repeats the publish within a second is not refused for it."""
    home = tmp_path / "home"
    ahead = format_time(datetime.now(UTC) + timedelta(seconds=2))
    args = ("advert", "publish", "--endpoint", "api=https://example.org/api")
    assert run(*args, "--issued-at", ahead, home=home).returncode == 0
    again = run(*args, home=home)
    assert again.returncode == 0, again.stderr
    paths = sorted((home / "presence" / "default").glob("*.json"))
    assert len(paths) == 2
    assert json.loads(paths[1].read_text())["issued_at"] > ahead
