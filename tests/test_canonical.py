"""Canonical JSON: RFC 8785's own examples through our wrapper, and its errors typed as ours."""

from __future__ import annotations

import json
import struct

import pytest

from hereabouts.canonical import canonicalize
from hereabouts.errors import HereaboutsError, NotCanonicalizable
from tests.load_vectors import load

RFC8785 = load("rfc8785")


def _double(hex_bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(hex_bits))[0]
    return value


@pytest.mark.parametrize("example", RFC8785["examples"])
def test_rfc8785_example(example: dict[str, str]) -> None:
    assert canonicalize(json.loads(example["input"])) == example["output"].encode("utf-8")


def test_rfc8785_keys_sort_by_utf16_code_units() -> None:
    value = json.loads(RFC8785["sorting"]["input"])
    out = canonicalize(value)
    assert list(json.loads(out).values()) == RFC8785["sorting"]["value_order"]


@pytest.mark.parametrize(("bits", "expected"), RFC8785["numbers"])
def test_rfc8785_number_formatting(bits: str, expected: str) -> None:
    assert canonicalize(_double(bits)) == expected.encode()


@pytest.mark.parametrize("bits", RFC8785["not_representable"])
def test_nan_and_infinities_are_refused(bits: str) -> None:
    with pytest.raises(NotCanonicalizable):
        canonicalize(_double(bits))


@pytest.mark.parametrize("value", [2**53 + 1, {1: "non-string key"}, b"bytes", object()])
def test_other_unrepresentable_values_raise_our_error(value: object) -> None:
    with pytest.raises(NotCanonicalizable) as caught:
        canonicalize(value)
    assert isinstance(caught.value, HereaboutsError)
