"""The edge pipeline: only verified, fresh, TOFU-clean events reach the ledger and statuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hereabouts.core.effects import Status
from hereabouts.core.projection import Projection
from hereabouts.errors import StorageError
from hereabouts.ledger import MemoryLedger, SqliteLedger
from hereabouts.peers.ingest import Accepted, Ingestor, Rejected
from hereabouts.peers.keyring import Keyring
from tests.signers import MINUTE, SECOND, T0, Peer

ALICE = Peer("alice", seed=1)
HOUR = 60 * MINUTE


def make_ingestor() -> Ingestor:
    return Ingestor(
        ledger=MemoryLedger(),
        projection=Projection(started_at_ms=T0 - HOUR, booting=False),
        keyring=Keyring(),
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


def test_future_old_replayed_and_tofu_violations_are_rejected() -> None:
    ingestor = make_ingestor()
    future = ALICE.sealed(ALICE.hey_there_event(T0 + MINUTE))
    old = ALICE.sealed(ALICE.hey_there_event(T0 - 25 * HOUR))
    assert ingestor.ingest(future, T0).reason == "future"  # type: ignore[union-attr]
    assert ingestor.ingest(old, T0).reason == "too_old"  # type: ignore[union-attr]
    ingestor.ingest(ALICE.sealed(ALICE.hey_there_event(T0)), T0)
    impostor = Peer("alice", seed=66)
    outcome = ingestor.ingest(impostor.sealed(impostor.hey_there_event(T0)), T0)
    assert isinstance(outcome, Rejected) and outcome.reason == "tofu_violation"
    assert ingestor.projection.status(impostor.did, T0) is None
    assert ingestor.counters.by_label("events_rejected") == {
        "future": 1,
        "too_old": 1,
        "tofu_violation": 1,
    }


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
    first = Ingestor(
        ledger=SqliteLedger(path),
        projection=Projection(started_at_ms=T0 - HOUR, booting=False),
        keyring=Keyring(),
    )
    bob = Peer("bob", seed=2)
    for data in (ALICE.hey_there(T0).raw, bob.hey_there(T0).raw, bob.chau(T0 + SECOND).raw):
        first.ingest(data, T0 + SECOND)
    expected = first.projection.peers(T0 + 2 * SECOND)
    first.ledger.close()
    second = Ingestor(
        ledger=SqliteLedger(path),
        projection=Projection(started_at_ms=T0 - HOUR, booting=False),
        keyring=Keyring(),
    )
    assert second.replay(T0 + 2 * SECOND) == 3
    assert second.projection.peers(T0 + 2 * SECOND) == expected
    second.ledger.close()


def test_storage_failure_is_ours_not_the_senders() -> None:
    class BrokenLedger(MemoryLedger):
        def _store(self, batch):  # type: ignore[no-untyped-def]
            raise StorageError("disk full")

    ingestor = Ingestor(
        ledger=BrokenLedger(),
        projection=Projection(started_at_ms=T0, booting=False),
        keyring=Keyring(),
    )
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
