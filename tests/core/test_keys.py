"""The key book: admission, quarantine, proof by time, forgetting, and who holds a name."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hereabouts.config import TrustConfig
from hereabouts.core.keys import KeyBook, fingerprint
from hereabouts.identity import Identity
from tests.signers import MINUTE, SECOND, T0

SILENCE = 5 * MINUTE
CONFIG = TrustConfig(
    admit_burst=5,
    admit_per_s=1.0,
    max_unproven=8,
    max_keys=20,
    settle_s=600.0,
    forget_after_s=3600.0,
    pin_ttl_s=7200.0,
)
SETTLE = int(CONFIG.settle_s * 1000)


def book(config: TrustConfig = CONFIG) -> KeyBook:
    return KeyBook(config, silence_ms=SILENCE, max_howdys=3)


def dids(count: int) -> list[str]:
    return [Identity.from_seed(n.to_bytes(32, "big")).did for n in range(1, count + 1)]


KEYS = dids(40)


def keep_talking(keys: KeyBook, did: str, name: str, start: int, until: int) -> None:
    """Heard every minute from ``start`` to ``until`` (a live node heartbeating)."""
    at = start
    while at <= until:
        keys.heard(did, name, at)
        at += MINUTE


# --- rule 1: admission --------------------------------------------------------------------


def test_unknown_keys_are_admitted_at_a_bounded_rate() -> None:
    keys = book()
    admitted = [keys.heard(did, "x", T0).admitted for did in KEYS[:10]]
    assert admitted == [True] * 5 + [False] * 5  # the burst, then nothing
    assert not keys.admissible(KEYS[5], T0)
    assert keys.admissible(KEYS[0], T0)  # known keys are always heard
    assert keys.admissible(KEYS[5], T0 + SECOND)  # one token a second comes back
    assert keys.heard(KEYS[5], "x", T0 + SECOND).admitted
    assert not keys.heard(KEYS[6], "x", T0 + SECOND).admitted


def test_members_and_our_own_ledger_need_no_token() -> None:
    keys = book()
    for did in KEYS[:5]:
        keys.heard(did, "x", T0)
    assert keys.heard(KEYS[10], "m", T0, member=True).admitted
    assert keys.heard(KEYS[11], "r", T0, restore=True).admitted
    assert keys.proven(KEYS[10]) and not keys.proven(KEYS[11])


def test_no_more_than_max_keys_are_remembered() -> None:
    keys = book(TrustConfig(admit_burst=100, max_unproven=10, max_keys=10))
    for did in KEYS[:10]:
        keys.heard(did, "m", T0, member=True)
    assert keys.full() and not keys.admissible(KEYS[10], T0)
    assert not keys.heard(KEYS[10], "x", T0).admitted
    assert len(keys) == 10


# --- rule 2: quarantine -------------------------------------------------------------------


def test_arrivals_are_kept_to_the_second() -> None:
    keys = book()
    keys.heard(KEYS[0], "x", T0)
    keys.heard(KEYS[0], "x", T0 + 999)
    assert keys.record(KEYS[0]).last_ms == T0  # type: ignore[union-attr]
    keys.heard(KEYS[0], "x", T0 + SECOND)
    assert keys.record(KEYS[0]).last_ms == T0 + SECOND  # type: ignore[union-attr]


def test_the_quarantine_evicts_the_least_recently_heard() -> None:
    keys = book(TrustConfig(admit_burst=100, max_unproven=3, max_keys=100))
    for n, did in enumerate(KEYS[:3]):
        keys.heard(did, "x", T0 + n * SECOND)
    keys.heard(KEYS[0], "x", T0 + 10 * SECOND)  # heard again: now the freshest
    heard = keys.heard(KEYS[3], "x", T0 + 11 * SECOND)
    assert heard.evicted == (KEYS[1],)
    assert keys.unproven_count() == 3 and not keys.known(KEYS[1])


# --- rule 3: proof by time ------------------------------------------------------------------


def test_a_key_heard_across_settle_s_proves_itself() -> None:
    keys = book()
    keys.heard(KEYS[0], "alice", T0)
    assert not keys.heard(KEYS[0], "alice", T0 + SETTLE - 1).proved
    assert keys.heard(KEYS[0], "alice", T0 + SETTLE).proved
    assert keys.proven(KEYS[0]) and keys.unproven_count() == 0 and keys.proven_count() == 1


def test_a_silence_longer_than_the_threshold_starts_the_clock_again() -> None:
    keys = book()
    keys.heard(KEYS[0], "alice", T0)
    assert keys.expired(T0 + SILENCE + 1) == [KEYS[0]]  # forgotten, not shown MISSING
    keys.heard(KEYS[0], "alice", T0 + SETTLE)  # back: a new key as far as we know
    assert not keys.proven(KEYS[0])


# --- rule 4: forgetting ---------------------------------------------------------------------


def test_proven_keys_drop_out_after_forget_after_and_lose_their_name_after_pin_ttl() -> None:
    keys = book()
    keep_talking(keys, KEYS[0], "alice", T0, T0 + SETTLE)
    last = T0 + SETTLE
    assert keys.expired(last + 3600 * SECOND) == []
    assert keys.expired(last + 3600 * SECOND + 1) == [KEYS[0]]
    assert keys.expired(last + 3601 * SECOND) == []  # told once
    assert keys.label(KEYS[0]).status == "held"  # the name is still held ...
    keys.expired(last + 7201 * SECOND)
    assert not keys.known(KEYS[0])  # ... until the pin's time is up


# --- rule 5: names --------------------------------------------------------------------------


def test_a_squatter_cannot_lock_the_real_node_out_or_keep_the_name() -> None:
    squatter, real = KEYS[0], KEYS[1]
    keys = book()
    keys.heard(squatter, "victim-host", T0)  # one hey_there before the real node starts
    assert keys.label(squatter).text == f"victim-host~{fingerprint(squatter)}"
    keep_talking(keys, real, "victim-host", T0 + MINUTE, T0 + MINUTE + SETTLE)
    keys.expired(T0 + MINUTE + SETTLE)
    assert not keys.known(squatter)  # gone silent, forgotten
    assert keys.label(real).text == "victim-host"
    assert keys.label(real).status == "held"


def test_the_first_key_to_prove_itself_holds_the_name_and_the_other_is_shown_apart() -> None:
    first, second = KEYS[0], KEYS[1]
    keys = book()
    keep_talking(keys, first, "host", T0, T0 + SETTLE)
    keep_talking(keys, second, "host", T0 + MINUTE, T0 + SETTLE + 2 * MINUTE)
    assert keys.label(first).text == "host"
    assert keys.label(second).text == f"host~{fingerprint(second)}"
    assert keys.label(second).status == "contested"


def test_an_old_key_cannot_rename_itself_onto_a_held_name() -> None:
    old, holder = KEYS[0], KEYS[1]
    keys = book()
    keep_talking(keys, old, "junk", T0, T0 + SETTLE)
    keep_talking(keys, holder, "victim", T0 + MINUTE, T0 + MINUTE + SETTLE)
    keys.heard(old, "victim", T0 + MINUTE + SETTLE + 1)
    assert keys.label(holder).text == "victim"
    assert keys.label(old).status == "contested"


def test_a_rotation_hands_the_name_to_the_new_key() -> None:
    old, new = KEYS[0], KEYS[1]
    keys = book()
    keep_talking(keys, old, "host", T0, T0 + SETTLE)
    keys.heard(new, "host", T0 + SETTLE + 1)
    assert keys.label(new).status == "contested"  # until the old key says otherwise
    keys.rotate(old, new, T0 + SETTLE + 1)
    assert keys.label(new).text == "host" and keys.proven(new)
    assert keys.label(old).status == "contested"


def test_names_bound_by_credentials_are_shown_plainly_unless_two_members_share_one() -> None:
    keys = book()
    keys.heard(KEYS[0], "db-1", T0, member=True)
    assert keys.label(KEYS[0], bound=True).text == "db-1"
    keys.heard(KEYS[1], "db-1", T0, member=True)
    assert keys.label(KEYS[0], bound=True).status == "contested"


# --- rule 6: whose welcome counts -------------------------------------------------------------


def test_fresh_keys_do_not_count_as_responders_but_proven_ones_do() -> None:
    keys = book()
    keep_talking(keys, KEYS[0], "a", T0, T0 + SETTLE)
    for did in KEYS[1:4]:
        keep_talking(keys, did, "p", T0, T0 + SETTLE)
    fake = KEYS[10]
    keys.heard(fake, "f", T0 + SETTLE + 10 * SECOND)
    arrival = T0 + SETTLE + 5 * SECOND
    assert keys.trusted_responder(KEYS[0], arrival)
    assert not keys.trusted_responder(fake, arrival)
    assert not keys.trusted_responder(KEYS[20], arrival)  # never heard


def test_a_young_network_counts_keys_heard_before_the_hey_there() -> None:
    keys = book()
    keys.heard(KEYS[0], "early", T0)
    keys.heard(KEYS[1], "made-for-it", T0 + 2 * SECOND)
    arrival = T0 + SECOND
    assert keys.trusted_responder(KEYS[0], arrival)
    assert not keys.trusted_responder(KEYS[1], arrival)


# --- bounds under a flood -------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    flood=st.lists(st.integers(0, 39), min_size=1, max_size=300),
    step_ms=st.integers(0, 5_000),
)
def test_whatever_arrives_the_book_stays_within_its_bounds(flood: list[int], step_ms: int) -> None:
    keys = book()
    for n, index in enumerate(flood):
        now = T0 + n * step_ms
        if keys.admissible(KEYS[index], now):
            keys.heard(KEYS[index], f"n{index % 3}", now)
        keys.expired(now)
        assert keys.unproven_count() <= CONFIG.max_unproven
        assert len(keys) <= CONFIG.max_keys


def test_a_node_needs_no_proof_of_its_own_key_but_takes_no_name_from_an_earlier_holder() -> None:
    keys = book()
    keep_talking(keys, KEYS[0], "host", T0, T0 + SETTLE)
    keys.vouch_for_self(KEYS[1], "mine", T0 + SETTLE)
    assert keys.label(KEYS[1]).text == "mine" and keys.proven(KEYS[1])
    keys.vouch_for_self(KEYS[2], "host", T0 + SETTLE)
    assert keys.label(KEYS[2]).status == "contested"
