"""Own documents on disk, publishing with consistency proofs, and the index forms."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hereabouts.advert import check_presence, verify_presence
from hereabouts.advert.errors import AdvertUsageError, BadAlias, PresenceExists
from hereabouts.advert.index import leaves_from_directory, load_index
from hereabouts.advert.merkle import format_root
from hereabouts.advert.publish import next_issue_time, publish_presence
from hereabouts.advert.store import PresenceStore
from hereabouts.identity import Identity
from tests.advert.conftest import ROOT, T0


def test_save_list_latest(tmp_path: Path, make_doc: Any) -> None:
    store = PresenceStore(tmp_path)
    first = make_doc()
    second = make_doc(issued_at=T0 + timedelta(seconds=480))
    path = store.save("default", first)
    assert path == tmp_path / "presence" / "default" / "20250101T115000Z.json"
    store.save("default", second)
    assert [p.name for p in store.paths("default")] == [
        "20250101T115000Z.json", "20250101T115800Z.json"]
    assert store.latest("default") == second
    assert store.load(path) == first
    assert store.aliases() == ["default"]
    assert store.latest_unexpired("default", T0 + timedelta(seconds=1000)) == second
    assert store.latest_unexpired("default", T0 + timedelta(seconds=1080)) is None
    assert not list((tmp_path / "presence" / "default").glob(".*"))  # no temp files left
    with pytest.raises(PresenceExists):
        store.save("default", first)


@pytest.mark.parametrize("alias", ["", "..", ".hidden", "a/b", "../../etc", "x" * 65, "a\x00"])
def test_alias_cannot_escape(tmp_path: Path, alias: str) -> None:
    with pytest.raises(BadAlias):
        PresenceStore(tmp_path).alias_dir(alias)


def test_prune_keeps_last_k_and_drops_expired(tmp_path: Path, make_doc: Any) -> None:
    store = PresenceStore(tmp_path)
    for i in range(6):
        store.save("a", make_doc(issued_at=T0 + timedelta(seconds=100 * i)))
    now = T0 + timedelta(seconds=1050)  # docs 0..4 expired (issued <= 450 s), doc 5 alive
    removed = store.prune("a", now, keep=3)
    assert len(removed) == 5
    assert [p.name for p in store.paths("a")] == ["20250101T115820Z.json"]
    # the newest is kept even when expired: it anchors the next consistency proof
    assert store.prune("a", T0 + timedelta(days=1), keep=3) == []
    assert len(store.paths("a")) == 1


def test_publish_links_growing_index(tmp_path: Path, identity: Identity) -> None:
    store = PresenceStore(tmp_path)
    index = tmp_path / "index.txt"
    index.write_text("alpha\nbeta\n")
    common: dict[str, Any] = {
        "identity": identity, "store": store, "alias": "a",
        "endpoints": {"mcp": "https://n.example"},
    }
    first = publish_presence(**common, issued_at=T0, index=load_index(index))
    assert first.proof is None and "proof" not in first.doc
    with index.open("a") as handle:
        handle.write("gamma\n\ndelta\n")
    second = publish_presence(**common, issued_at=T0 + timedelta(seconds=60),
                              index=load_index(index))
    assert second.proof is not None
    assert (second.proof.old_size, second.proof.new_size) == (2, 4)
    info = check_presence(second.doc, now=T0 + timedelta(seconds=61))
    assert info.proof is not None and format_root(info.proof.old_root) == first.doc["merkle_root"]
    # an unchanged index gives an empty proof between equal roots
    third = publish_presence(**common, issued_at=T0 + timedelta(seconds=120),
                             index=load_index(index))
    assert third.proof is not None and third.proof.old_size == third.proof.new_size == 4
    # rewriting history: no proof
    index.write_text("rewritten\nbeta\ngamma\ndelta\nepsilon\n")
    fourth = publish_presence(**common, issued_at=T0 + timedelta(seconds=180),
                              index=load_index(index))
    assert fourth.proof is None and "did not only grow" in fourth.note
    verify_presence(fourth.doc, now=T0 + timedelta(seconds=181))


def test_publish_refuses_going_back(tmp_path: Path, identity: Identity) -> None:
    store = PresenceStore(tmp_path)
    kw: dict[str, Any] = {"identity": identity, "store": store, "alias": "a",
                          "endpoints": {}, "merkle_root": ROOT}
    publish_presence(**kw, issued_at=T0)
    with pytest.raises(AdvertUsageError):
        publish_presence(**kw, issued_at=T0)
    with pytest.raises(AdvertUsageError):
        publish_presence(**kw, issued_at=T0 - timedelta(seconds=5))
    with pytest.raises(AdvertUsageError):
        publish_presence(identity=identity, store=store, alias="a", endpoints={},
                         issued_at=T0 + timedelta(seconds=9))


def test_directory_index(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    (root / "sub").mkdir(parents=True)
    (root / "b.txt").write_text("B")
    (root / "sub" / "a.txt").write_text("A")
    (root / ".swp").write_text("ignored")
    (root / "link").symlink_to(root / "b.txt")
    leaves = leaves_from_directory(root)
    assert [leaf.split(b"\x00")[0] for leaf in leaves] == [b"b.txt", b"sub/a.txt"]
    before = load_index(root).root()
    (root / "b.txt").write_text("changed")
    assert load_index(root).root() != before
    with pytest.raises(AdvertUsageError):
        load_index(tmp_path / "missing")


def test_next_issue_time_follows_a_close_previous_issue() -> None:
    previous = {"issued_at": "2025-01-01T11:50:00Z"}
    assert next_issue_time(None, T0 + timedelta(seconds=0.7)) == T0
    assert next_issue_time(previous, T0 + timedelta(seconds=0.7)) == T0 + timedelta(seconds=1)
    assert next_issue_time(previous, T0 - timedelta(seconds=4)) == T0 + timedelta(seconds=1)
    # Too far ahead to chase: the clock's time, which the publish then refuses with a reason.
    assert next_issue_time(previous, T0 - timedelta(seconds=10)) == T0 - timedelta(seconds=10)
    assert next_issue_time(previous, T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=30)
    assert next_issue_time({"issued_at": "garbage"}, T0) == T0
