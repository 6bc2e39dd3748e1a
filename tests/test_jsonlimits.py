"""The depth guard in front of every parser of input from elsewhere."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hereabouts.errors import EventTooDeep, JsonTooDeep
from hereabouts.jsonlimits import MAX_JSON_DEPTH, check_depth


def nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


def real_depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((real_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((real_depth(v) for v in value), default=0)
    return 0


def test_ordinary_documents_pass() -> None:
    check_depth(b'{"body":{"kind":"chau","endpoints":{"a":"b"}},"sig":"x"}')
    check_depth(nested(MAX_JSON_DEPTH))


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100, 1_000, 100_000])
def test_deep_nesting_is_refused_without_recursion(depth: int) -> None:
    with pytest.raises(JsonTooDeep, match="deeper than"):
        check_depth(nested(depth))


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"name": "[" * 500 + "{" * 500 + '\\"]"'}).encode()
    check_depth(text)


def test_many_shallow_brackets_pass_the_slow_path() -> None:
    wide = json.dumps([{"a": [1]} for _ in range(2_000)]).encode()
    check_depth(wide)


def test_unbalanced_brackets_are_refused_on_the_slow_path() -> None:
    with pytest.raises(JsonTooDeep):
        check_depth(b"{" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))


def test_the_error_class_can_be_chosen() -> None:
    with pytest.raises(EventTooDeep):
        check_depth(nested(50), error=EventTooDeep)


json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet="[]{}\"\\ab"),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(alphabet="[]{}ab", max_size=3), children, max_size=3),
    max_leaves=40,
)


@given(value=json_values, limit=st.integers(min_value=1, max_value=12))
def test_agrees_with_the_real_depth(value: object, limit: int) -> None:
    data = json.dumps(value).encode()
    if real_depth(value) <= limit:
        check_depth(data, limit)
    else:
        with pytest.raises(JsonTooDeep):
            check_depth(data, limit)
