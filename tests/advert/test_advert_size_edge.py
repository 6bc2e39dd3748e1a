"""One size rule for presence@2: what is signed and stored is what verifies, at every byte.

Documents are built whose final form (signed, with ``id`` and ``signature``, as canonical
JSON) is 2 bytes under the limit to 2 bytes over it. Signing, verifying, storing, serving,
``advert verify`` and ``advert show`` must all draw the line in the same place, and the
command line must report the document's real size.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hereabouts.advert import (
    MAX_DOCUMENT_BYTES,
    encode_presence,
    sign_presence,
    verify_presence,
)
from hereabouts.advert.errors import NotSignable, PresenceOversize
from hereabouts.advert.fetch import fetch_presence
from hereabouts.advert.http import create_app
from hereabouts.advert.store import PresenceStore
from hereabouts.identity import Identity
from tests.advert.conftest import ROOT, SEED, T0, Clock, independent_sign, run_cli, serve

ENDPOINTS = 10
PAD_PER_ENDPOINT = 2000  # under the 2048-character URL limit
TARGETS = range(MAX_DOCUMENT_BYTES - 2, MAX_DOCUMENT_BYTES + 3)
AT = "2025-01-01T11:51:00Z"


def padded_fields(did: str, pad: int) -> dict[str, Any]:
    """An unsigned document whose endpoints carry ``pad`` filler characters in all."""
    endpoints = {}
    for i in range(ENDPOINTS):
        take = min(pad, PAD_PER_ENDPOINT)
        pad -= take
        endpoints[f"e{i}"] = "https://node.example/" + "a" * take
    assert pad == 0, "not enough room for the filler"
    return {
        "did": did,
        "endpoints": endpoints,
        "merkle_root": ROOT,
        "issued_at": "2025-01-01T11:50:00Z",
        "expires_at": "2025-01-01T12:00:00Z",
        "ttl_seconds": 600,
    }


def fields_of_final_size(target: int) -> dict[str, Any]:
    """Fields that, once signed, make a document of exactly ``target`` canonical bytes."""
    did = Identity.from_seed(SEED).did
    base = len(encode_presence(independent_sign(padded_fields(did, 0), SEED, did)))
    fields = padded_fields(did, target - base)
    assert len(encode_presence(independent_sign(fields, SEED, did))) == target
    return fields


@pytest.mark.parametrize("target", TARGETS)
def test_sign_and_verify_agree(target: int) -> None:
    identity = Identity.from_seed(SEED)
    fields = fields_of_final_size(target)
    theirs = independent_sign(fields, SEED, identity.did)  # what another signer would send
    if target <= MAX_DOCUMENT_BYTES:
        ours = sign_presence(dict(fields), identity)
        assert ours == theirs and len(encode_presence(ours)) == target
        verify_presence(ours, now=T0)
    else:
        with pytest.raises(NotSignable, match=f"{target} bytes"):
            sign_presence(dict(fields), identity)
        with pytest.raises(PresenceOversize, match=f"{target} bytes"):
            verify_presence(theirs, now=T0)


def test_store_serve_verify_and_show_agree(tmp_path: Path) -> None:
    """Each size under its own alias: what is kept is served and shown; nothing else is."""
    home = tmp_path / "home"
    store = PresenceStore(home)
    identity = Identity.from_seed(SEED)
    files: dict[int, Path] = {}
    for target in TARGETS:
        fields = fields_of_final_size(target)
        if target <= MAX_DOCUMENT_BYTES:
            doc = sign_presence(fields, identity)
        else:
            # What an older release signed and stored; it must be reported, not hidden.
            doc = independent_sign(fields, SEED, identity.did)
        files[target] = store.save(f"size{target}", doc)
        assert files[target].stat().st_size == target + 1  # the file ends with a newline

    clock = Clock(T0 + timedelta(seconds=60))
    with serve(create_app(store=store, clock=clock)) as url:
        for target in TARGETS:
            where = f"{url}/.well-known/hn/presence/size{target}"
            if target <= MAX_DOCUMENT_BYTES:
                verify_presence(fetch_presence(where), now=clock.now)

    for target, path in files.items():
        result = run_cli("advert", "verify", str(path), "--at", AT, home=home)
        if target <= MAX_DOCUMENT_BYTES:
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode == 1, result.stdout
            assert "presence_oversize" in result.stderr
            assert f"{target} bytes" in result.stderr, "the real size, not the capped read's"

    shown = run_cli("advert", "show", home=home)
    assert shown.returncode == 0, shown.stderr
    for target, path in files.items():
        listed = [line for line in shown.stdout.splitlines() if line.startswith(f"size{target}\t")]
        skipped = [line for line in shown.stderr.splitlines() if str(path) in line]
        if target <= MAX_DOCUMENT_BYTES:
            assert listed and not skipped, (target, shown.stdout, shown.stderr)
        else:
            assert not listed, (target, shown.stdout)
            assert len(skipped) == 1 and "presence_oversize" in skipped[0], shown.stderr
            assert f"{target} bytes" in skipped[0]
    only = run_cli("advert", "show", "--alias", f"size{MAX_DOCUMENT_BYTES}", home=home)
    assert only.returncode == 0 and len(encode_presence(json.loads(only.stdout))) == (
        MAX_DOCUMENT_BYTES)


def test_verify_reports_the_real_size_of_a_big_file(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b'{"did": "' + b"x" * 50_000 + b'"}\n')
    real = big.stat().st_size - 1
    result = run_cli("advert", "verify", str(big), home=tmp_path / "home")
    assert result.returncode == 1 and "presence_oversize" in result.stderr
    assert f"{real} bytes" in result.stderr, result.stderr
