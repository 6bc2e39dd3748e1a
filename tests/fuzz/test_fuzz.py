"""Fuzzing every decoder of signed input: typed refusals only, and nothing forged gets in.

For each target of :mod:`tests.fuzz.targets`: valid signed inputs mutated (bytes flipped,
inserted, deleted; keys duplicated, reordered, added, dropped; values changed, nested deep,
spelled with escapes and look-alike characters), random bytes, random text and random JSON
built from the target's own keys and strings. Derandomized and without an example database,
so every run (and CI) tries the same cases; ``bench/fuzz.py`` searches further with atheris.
"""

from __future__ import annotations

import functools
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hereabouts.errors import BadSignature, NotCanonical, RemoteError
from tests.fuzz.mutations import RandomChoices, Style, Vocabulary, mutate, parse, write
from tests.fuzz.targets import BY_NAME, TARGETS, Finding, Target, check, corpus


def fuzz(examples: int) -> settings:
    """Reproducible (derandomized, no database); slow cases (a 16 KiB document) are fine."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


by_name = pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])

MUTANTS_PER_EXAMPLE = 16
"""Mutants made and checked per hypothesis example: a mutant costs a fraction of a
millisecond, a hypothesis example several times that."""


@functools.cache
def json_documents(vocabulary: Vocabulary) -> st.SearchStrategy[bytes]:
    """JSON built from scratch, with the keys and strings of the target's valid inputs."""
    known = st.sampled_from(vocabulary.strings) if vocabulary.strings else st.nothing()
    names = st.sampled_from(vocabulary.keys) if vocabulary.keys else st.nothing()
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats()
        | known
        | st.text(max_size=24)
    )
    keys = names | st.text(max_size=8)
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
        max_leaves=16,
    )
    documents = st.dictionaries(keys, values, max_size=8)
    return st.builds(
        lambda doc, ascii_only: json.dumps(doc, ensure_ascii=ascii_only).encode(
            "utf-8", "surrogatepass"
        ),
        documents,
        st.booleans(),
    )


@by_name
def test_every_seed_is_read_and_means_what_was_signed(target: Target) -> None:
    """A target that refused everything would pass every fuzz test: each must read its own
    seeds (all but the hub's watch frames, which carry no signature, as signed)."""
    seeds = corpus(target)
    read = [target.open(seed) for seed in seeds.seeds]
    unsigned = sum(meaning is None for meaning in read)
    assert unsigned == (2 if target.name == "hub_frame" else 0)
    assert set(read) - {None} == seeds.meanings


SPACED: dict[str, type[Exception] | None] = {
    "peer_event": NotCanonical,  # one event, one byte string
    "site_event": NotCanonical,  # compact, fields in their declared order
    "presence": None,  # values are signed (RFC 8785 of the document)
    "credential": None,
    "revocation": None,
}


@pytest.mark.parametrize(("name", "refusal"), SPACED.items())
def test_white_space_is_refused_or_harmless_as_the_format_says(
    name: str, refusal: type[Exception] | None
) -> None:
    """Rewriting a valid input with spaces after ``,`` and ``:`` (everywhere, the signed
    body of a site event included) changes bytes but no value; where that is allowed the
    input still verifies and means exactly what was signed."""
    target = BY_NAME[name]
    for seed in corpus(target).seeds:
        spaced = write(parse(seed), Style(item_sep=", ", key_sep=": "))
        assert spaced != seed
        if refusal is not None:
            with pytest.raises(refusal):
                target.open(spaced)
        else:
            assert target.open(spaced) == target.open(seed)
        check(target, spaced)


@by_name
@fuzz(200)
@given(seed=st.integers(min_value=0, max_value=2**64 - 1))
def test_mutated_signed_inputs_are_refused_or_mean_what_was_signed(
    target: Target, seed: int
) -> None:
    """Mutants of valid signed inputs. Their choices come from ``random.Random(seed)``, not
    from hypothesis draws, which lean towards small numbers (the first mutation, the first
    seed) and would leave most mutations untried."""
    seeds, vocabulary = corpus(target).seeds, corpus(target).vocabulary
    rng = random.Random(seed)
    for _ in range(MUTANTS_PER_EXAMPLE):
        check(target, mutate(rng.choice(seeds), seeds, RandomChoices(rng), vocabulary))


@by_name
@fuzz(80)
@given(data=st.data())
def test_json_from_scratch_is_refused_with_a_typed_error(
    target: Target, data: st.DataObject
) -> None:
    check(target, data.draw(json_documents(corpus(target).vocabulary)))


@by_name
@fuzz(60)
@given(blob=st.binary(max_size=2048))
def test_random_bytes_are_refused_with_a_typed_error(target: Target, blob: bytes) -> None:
    check(target, blob)


@by_name
@fuzz(60)
@given(text=st.text(max_size=256))
def test_random_text_is_refused_with_a_typed_error(target: Target, text: str) -> None:
    check(target, text.encode("utf-8", "surrogatepass"))


FOUND = [
    ("hub_frame", b'{"type":"event","sealed":' + b"[" * 4000 + b"]" * 4000 + b"}"),
    ("presence", b'{"ttl_seconds":' + b"9" * 5000 + b"}"),
    ("credential", b'{"parent":' * 3000 + b"null" + b"}" * 3000),
]
"""What the fuzzers found (each fixed since: RecursionError, ValueError, RecursionError),
kept so that it stays found-and-fixed whatever the random choices do."""


@pytest.mark.parametrize(("name", "data"), FOUND, ids=[name for name, _ in FOUND])
def test_what_the_fuzzers_found_stays_refused(name: str, data: bytes) -> None:
    check(BY_NAME[name], data)


# --- the harness itself can fail -----------------------------------------------------------


def _fake(open_: Any) -> Target:
    return Target("fake", open_, lambda: [b"signed"], RemoteError, 100)


def test_an_untyped_error_is_a_finding() -> None:
    def fragile(data: bytes) -> str:
        return {b"signed": "signed"}[data]  # KeyError for anything else

    with pytest.raises(Finding) as caught:
        check(_fake(fragile), b"forged")
    assert caught.value.kind == "untyped" and caught.value.key.startswith("KeyError@")
    check(_fake(fragile), b"signed")


def test_reading_something_never_signed_is_a_finding() -> None:
    def gullible(data: bytes) -> bytes:
        return data  # believes anything

    with pytest.raises(Finding) as caught:
        check(_fake(gullible), b"forged")
    assert caught.value.kind == "forgery"


def test_a_typed_refusal_is_not_a_finding() -> None:
    def strict(data: bytes) -> bytes:
        if data != b"signed":
            raise BadSignature("no")
        return data

    check(_fake(strict), b"forged")


def test_mutations_are_reproducible_from_a_seed_and_change_the_input() -> None:
    seeds, vocabulary = corpus(TARGETS[0]).seeds, corpus(TARGETS[0]).vocabulary
    runs = [
        [mutate(seeds[0], seeds, RandomChoices(random.Random(n)), vocabulary) for n in range(50)]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert sum(m != seeds[0] for m in runs[0]) >= 45
