"""The edge pipeline: only verified, fresh, admitted events reach the ledger and statuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hereabouts.config import TrustConfig
from hereabouts.core.effects import Status, StatusChanged
from hereabouts.core.keys import KeyBook
from hereabouts.core.projection import Projection
from hereabouts.errors import StorageError
from hereabouts.ledger import Ledger, MemoryLedger, SqliteLedger
from hereabouts.peers.ingest import Accepted, Ingestor, Rejected
from hereabouts.peers.keyring import make_rotation
from hereabouts.wire import unseal
from tests.signers import MINUTE, SECOND, T0, Peer

ALICE = Peer("alice", seed=1)
HOUR = 60 * MINUTE


def make_ingestor(
    ledger: Ledger | None = None, trust: TrustConfig | None = None, **options: object
) -> Ingestor:
    return Ingestor(
        ledger=MemoryLedger() if ledger is None else ledger,
        projection=Projection(),
        keys=KeyBook(trust or TrustConfig(), silence_ms=5 * MINUTE, max_howdys=10),
        **options,  # type: ignore[arg-type]
    )


def test_good_event_is_stored_projected_and_counted() -> None:
    ingestor = make_ingestor()
    outcome = ingestor.ingest(ALICE.sealed(ALICE.hey_there_event(T0)), T0)
    assert isinstance(outcome, Accepted) and outcome.new
    assert [(c.did, c.new) for c in outcome.changes] == [(ALICE.did, Status.ONLINE)]
    assert outcome.event.id in ingestor.ledger
    assert ingestor.counters.get("events_in", "hey_there") == 1
    again = ingestor.ingest(ALICE.sealed(ALICE.hey_there_event(T0)), T0)
    assert isinstance(again, Accepted) and not again.new and again.changes == []
    assert ingestor.counters.get("events_duplicate", "hey_there") == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"nonsense", "not_json"),
        (b"{}", "malformed"),
        (b"x" * 20000, "oversize"),
    ],
)
def test_bad_bytes_are_rejected_and_counted_by_reason(data: bytes, reason: str) -> None:
    ingestor = make_ingestor()
    outcome = ingestor.ingest(data, T0)
    assert isinstance(outcome, Rejected) and outcome.reason == reason
    assert ingestor.counters.get("events_rejected", reason) == 1
    assert len(ingestor.ledger) == 0 and len(ingestor.projection) == 0


def test_future_and_old_events_are_rejected() -> None:
    ingestor = make_ingestor()
    future = ALICE.sealed(ALICE.hey_there_event(T0 + MINUTE))
    old = ALICE.sealed(ALICE.hey_there_event(T0 - 25 * HOUR))
    assert ingestor.ingest(future, T0).reason == "future"  # type: ignore[union-attr]
    assert ingestor.ingest(old, T0).reason == "too_old"  # type: ignore[union-attr]
    assert ingestor.counters.by_label("events_rejected") == {"future": 1, "too_old": 1}


def test_failure_reports_that_cannot_be_true_are_refused_for_known_keys_too() -> None:
    """A report about its own signer, or claiming news of its subject dated after the report
    itself, is refused on every path into the ledger (a howdy's neighbours included)."""
    bob = Peer("bob", seed=2)
    ingestor = make_ingestor()
    for peer in (ALICE, bob):
        assert isinstance(ingestor.ingest(peer.sealed(peer.hey_there_event(T0)), T0), Accepted)
    self_report = ALICE.unreachable(ALICE, T0 + SECOND, last_seen_ms=T0)
    from_the_future = ALICE.unreachable(bob, T0 + SECOND, last_seen_ms=T0 + 2 * SECOND)
    fair = ALICE.unreachable(bob, T0 + SECOND, last_seen_ms=T0)
    for bad in (self_report, from_the_future):
        outcome = ingestor.ingest(bad.raw, T0 + SECOND)
        assert isinstance(outcome, Rejected) and outcome.reason == "bad_report"
        assert bad.id not in ingestor.ledger
    assert isinstance(ingestor.ingest(fair.raw, T0 + SECOND), Accepted)
    assert ingestor.counters.by_label("events_rejected") == {"bad_report": 2}


def test_another_key_under_a_used_name_is_a_peer_of_its_own_not_a_takeover() -> None:
    ingestor = make_ingestor()
    ingestor.ingest(ALICE.sealed(ALICE.hey_there_event(T0)), T0)
    impostor = Peer("alice", seed=66)
    outcome = ingestor.ingest(impostor.sealed(impostor.hey_there_event(T0)), T0)
    assert isinstance(outcome, Accepted)
    assert ingestor.projection.status(ALICE.did, T0) is Status.ONLINE
    assert ingestor.keys.label(impostor.did).text.startswith("alice~")


def test_a_bad_rotation_statement_is_refused() -> None:
    ingestor = make_ingestor()
    new = Peer("alice", seed=2)
    bogus = make_rotation(Peer("x", seed=3).identity, name="alice", new_did=new.did, at_ms=T0)
    bogus = type(bogus)(old_did=ALICE.did, at_ms=T0, sig=bogus.sig)
    outcome = ingestor.ingest(new.sealed(new.hey_there_event(T0, rotation=bogus)), T0)
    assert isinstance(outcome, Rejected) and outcome.reason == "bad_rotation"


def test_new_keys_past_the_admission_rate_are_refused_before_their_signature() -> None:
    ingestor = make_ingestor(trust=TrustConfig(admit_burst=3, admit_per_s=1.0))
    peers = [Peer(f"p{n}", seed=100 + n) for n in range(6)]
    outcomes = [ingestor.ingest(p.hey_there(T0).raw, T0) for p in peers]
    assert [type(o).__name__ for o in outcomes] == ["Accepted"] * 3 + ["Rejected"] * 3
    assert ingestor.counters.by_label("events_rejected") == {"admission": 3}
    # A forged signature from an unknown key is refused the same way, unchecked.
    real, other = peers[5].hey_there(T0), peers[4].hey_there(T0)
    forged = real.raw.replace(sig_of(real.raw), sig_of(other.raw))
    assert ingestor.ingest(forged, T0).reason == "admission"  # type: ignore[union-attr]
    assert len(ingestor.projection) == 3 and len(ingestor.ledger) == 3
    # Known keys are never held up by the rate.
    assert isinstance(ingestor.ingest(peers[0].newspaper(T0 + 1).raw, T0 + 1), Accepted)


def test_keys_pushed_out_of_the_quarantine_are_forgotten_everywhere() -> None:
    forgotten: list[StatusChanged] = []
    ingestor = make_ingestor(
        trust=TrustConfig(admit_burst=100, max_unproven=2, max_keys=100),
        on_forget=forgotten.append,
    )
    first, second, third = (Peer(f"q{n}", seed=110 + n) for n in range(3))
    for at, peer in enumerate((first, second, third)):
        ingestor.ingest(peer.hey_there(T0 + at).raw, T0 + at)
    assert first.did not in ingestor.projection
    assert ingestor.ledger.forget(first.did) == 0  # its events are gone already
    assert [(c.did, c.cause) for c in forgotten] == [(first.did, "forgotten")]
    assert ingestor.counters.by_label("keys_forgotten") == {"quarantine_full": 1}


def test_silent_unproven_keys_are_forgotten_instead_of_shown_missing() -> None:
    ingestor = make_ingestor()
    ingestor.ingest(ALICE.hey_there(T0).raw, T0)
    assert ingestor.expire(T0 + 5 * MINUTE) == []
    assert ingestor.expire(T0 + 5 * MINUTE + 1) == [ALICE.did]
    assert len(ingestor.projection) == 0 and len(ingestor.ledger) == 0


def test_relayed_old_events_do_not_make_a_key_look_present() -> None:
    ingestor = make_ingestor(trust=TrustConfig(settle_s=60.0))
    old = ALICE.newspaper(T0).raw
    ingestor.ingest(ALICE.hey_there(T0).raw, T0)
    # The same key's old news, relayed ten minutes later, is history: it proves nothing.
    ingestor.ingest(ALICE.newspaper(T0 + SECOND).raw, T0 + 10 * MINUTE)
    ingestor.ingest(old, T0 + 10 * MINUTE)
    assert not ingestor.keys.proven(ALICE.did)
    ingestor.ingest(ALICE.newspaper(T0 + 10 * MINUTE).raw, T0 + 10 * MINUTE)
    assert ingestor.keys.proven(ALICE.did)
    assert unseal(old, check_clock=False).did == ALICE.did


def sig_of(sealed: bytes) -> bytes:
    return sealed.split(b'"sig":"')[1].split(b'"')[0]


def test_pruned_event_regossiped_is_refused_as_replayed() -> None:
    ingestor = make_ingestor()
    early = ALICE.newspaper(T0).raw
    ingestor.ingest(ALICE.hey_there(T0 - SECOND).raw, T0)
    ingestor.ingest(early, T0)
    ingestor.ingest(ALICE.newspaper(T0 + 23 * HOUR).raw, T0 + 23 * HOUR)
    # A day later the early newspaper is past retention and not needed to decide anything.
    assert ingestor.prune(T0 + 24 * HOUR + MINUTE) >= 1
    outcome = ingestor.ingest(early, T0 + 24 * HOUR - MINUTE)
    assert isinstance(outcome, Rejected) and outcome.reason == "replayed"


def test_batch_ingest_mixes_good_and_bad_in_order() -> None:
    ingestor = make_ingestor()
    good = ALICE.sealed(ALICE.hey_there_event(T0))
    outcomes = ingestor.ingest_batch([good, b"junk", good, ALICE.newspaper(T0).raw], T0)
    assert [type(o).__name__ for o in outcomes] == ["Accepted", "Rejected", "Accepted", "Accepted"]
    assert [o.new for o in outcomes if isinstance(o, Accepted)] == [True, False, True]


def test_replay_rebuilds_statuses_from_a_sqlite_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    first = make_ingestor(SqliteLedger(path))
    bob = Peer("bob", seed=2)
    for data in (ALICE.hey_there(T0).raw, bob.hey_there(T0).raw, bob.chau(T0 + SECOND).raw):
        first.ingest(data, T0 + SECOND)
    expected = first.projection.peers(T0 + 2 * SECOND)
    first.ledger.close()
    second = make_ingestor(SqliteLedger(path))
    assert second.replay(T0 + 2 * SECOND) == 3
    assert second.projection.peers(T0 + 2 * SECOND) == expected
    second.ledger.close()


def test_storage_failure_is_ours_not_the_senders() -> None:
    class BrokenLedger(MemoryLedger):
        def _store(self, batch):  # type: ignore[no-untyped-def]
            raise StorageError("disk full")

    ingestor = make_ingestor(BrokenLedger())
    with pytest.raises(StorageError):
        ingestor.ingest(ALICE.hey_there(T0).raw, T0)


def test_counters_export_as_prometheus_text() -> None:
    ingestor = make_ingestor()
    ingestor.ingest(ALICE.hey_there(T0).raw, T0)
    ingestor.ingest(b"junk", T0)
    registry = CollectorRegistry()
    ingestor.counters.register(registry)
    text = generate_latest(registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("hereabouts_events_in_total", (("kind", "hey_there"),))] == 1
    assert samples[("hereabouts_events_rejected_total", (("reason", "not_json"),))] == 1
