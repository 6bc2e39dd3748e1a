"""Mutations of valid inputs, shared by the hypothesis fuzz tests and ``bench/fuzz.py``.

A mutation takes the bytes of a valid signed object and makes a near miss: a flipped bit,
an inserted quote, a duplicated key, keys in another order, a field added, a value changed,
a value buried under a thousand brackets, a string written with ``\\u`` escapes or with a
look-alike letter. Whatever comes out, the decoders must refuse with a typed error or read
exactly what was signed (see :mod:`tests.fuzz.targets`).

Every random decision goes through a :class:`Choices`: hypothesis draws them (so a failing
case shrinks to a short list of small choices) and the atheris bench answers them from a
seeded ``random.Random`` (so libFuzzer can replay a mutation from its seed).
"""

from __future__ import annotations

import copy
import json
import random
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Choices(Protocol):
    """Where a mutation's random decisions come from."""

    def below(self, n: int) -> int:
        """A number in ``range(n)`` (``n`` >= 1)."""
        ...

    def blob(self, max_size: int) -> bytes:
        """Up to ``max_size`` arbitrary bytes."""
        ...


@dataclass
class RandomChoices:
    """:class:`Choices` from a ``random.Random`` (the atheris bench)."""

    rng: random.Random

    def below(self, n: int) -> int:
        return self.rng.randrange(n)

    def blob(self, max_size: int) -> bytes:
        return self.rng.randbytes(self.rng.randrange(max_size + 1))


def pick(choices: Choices, items: Sequence[Any]) -> Any:
    return items[choices.below(len(items))]


# --- a JSON tree that keeps what json.loads would lose -----------------------------------
# Duplicate keys, key order, the spelling of numbers and the escaping of strings are all
# things a decoder may get wrong, so the tree keeps them and the writer reproduces them.


@dataclass
class Str:
    value: str
    style: str = "plain"
    """``plain`` (UTF-8 as is), ``ascii`` (``\\u`` for non-ASCII) or ``escaped`` (``\\u``
    for every character: the same string in other bytes)."""


@dataclass
class Num:
    text: str


@dataclass
class Obj:
    pairs: list[list[Any]] = field(default_factory=list)  # [Str key, value] pairs


@dataclass
class Nest:
    """``value`` under ``depth`` arrays, or objects of one ``key`` (a key the decoder knows
    reaches its recursive types): written without recursion."""

    value: Any
    depth: int
    key: str | None = None


@dataclass
class Style:
    item_sep: str = ","
    key_sep: str = ":"
    prefix: bytes = b""
    suffix: bytes = b""


def parse(data: bytes) -> Any:
    """The tree of ``data``; ValueError (or RecursionError) when it is not JSON."""
    tree = json.loads(
        data.decode("utf-8"),
        object_pairs_hook=lambda pairs: Obj([[Str(k), v] for k, v in pairs]),
        parse_int=Num,
        parse_float=Num,
        parse_constant=Num,
    )
    return _wrap_strings(tree)


def _wrap_strings(node: Any) -> Any:
    if isinstance(node, str):
        return Str(node)
    if isinstance(node, list):
        return [_wrap_strings(item) for item in node]
    if isinstance(node, Obj):
        for pair in node.pairs:
            pair[1] = _wrap_strings(pair[1])
    return node


def _write_str(node: Str) -> str:
    if node.style == "escaped":
        units = node.value.encode("utf-16-le", "surrogatepass")
        codes = (int.from_bytes(units[i : i + 2], "little") for i in range(0, len(units), 2))
        return '"' + "".join(f"\\u{code:04x}" for code in codes) + '"'
    return json.dumps(node.value, ensure_ascii=node.style == "ascii")


def write(tree: Any, style: Style | None = None) -> bytes:
    """Bytes for ``tree``; lone surrogates become (invalid) UTF-8 on purpose."""
    style = style or Style()
    out: list[str] = []

    def emit(node: Any) -> None:
        if isinstance(node, Str):
            out.append(_write_str(node))
        elif isinstance(node, Num):
            out.append(node.text)
        elif isinstance(node, Obj):
            out.append("{")
            for i, (key, value) in enumerate(node.pairs):
                if i:
                    out.append(style.item_sep)
                out.append(_write_str(key))
                out.append(style.key_sep)
                emit(value)
            out.append("}")
        elif isinstance(node, list):
            out.append("[")
            for i, item in enumerate(node):
                if i:
                    out.append(style.item_sep)
                emit(item)
            out.append("]")
        elif isinstance(node, Nest):
            opening = "[" if node.key is None else "{" + json.dumps(node.key) + style.key_sep
            out.append(opening * node.depth)
            emit(node.value)
            out.append(("]" if node.key is None else "}") * node.depth)
        else:
            out.append(json.dumps(node))  # None, True, False

    emit(tree)
    return style.prefix + "".join(out).encode("utf-8", "surrogatepass") + style.suffix


Slot = tuple[list[Any], int]
"""Where a node sits: (container, index); an object's value sits at (pair, 1)."""


def _slots(root: list[Any]) -> Iterator[Slot]:
    stack: list[Slot] = [(root, 0)]
    while stack:
        container, index = stack.pop()
        yield container, index
        node = container[index]
        if isinstance(node, Obj):
            stack.extend((pair, 1) for pair in node.pairs)
        elif isinstance(node, list):
            stack.extend((node, i) for i in range(len(node)))


def _objects(root: list[Any]) -> list[Obj]:
    return [c[i] for c, i in _slots(root) if isinstance(c[i], Obj)]


# --- what mutations put in -----------------------------------------------------------------

TOKENS: tuple[bytes, ...] = (
    b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b" ", b"\n", b"\x00", b"\x7f", b"\xff",
    b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"null", b"-0", b"1e999", b"\\u0000",
    b"\\ud800", b'\\"', "é".encode(), "\u200b".encode(), "\u202e".encode(), b"[" * 20,
)
"""Bytes that matter to a JSON reader: structure, escapes, broken and tricky UTF-8."""

NUMBERS: tuple[str, ...] = (
    "0", "-0", "-1", "1.0", "1e0", "0.5", "01", "9007199254740991", "9007199254740992",
    "18446744073709551616", "1e400", "-1e400", "NaN", "Infinity", "1" * 5000,
)

HOMOGLYPHS = str.maketrans("aeocpxyiABEHKMOPTX", "аеосрхуіАВЕНКМОРТХ")
FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in map(chr, range(0x21, 0x7F))}
INSERTED_CHARACTERS = ("\u200b", "\u202e", "\ufeff", "\u0000", "\u0301", " ", "\ud800", "é")


def _string_variants(value: str, choices: Choices, vocabulary: Vocabulary) -> str:
    position = choices.below(len(value) + 1)
    variant = choices.below(11)
    if variant == 0:
        return unicodedata.normalize(pick(choices, ("NFD", "NFKC", "NFKD")), value)
    if variant == 1:
        return value[:position] + pick(choices, INSERTED_CHARACTERS) + value[position:]
    if variant == 2:
        return value.translate(HOMOGLYPHS)
    if variant == 3:
        return "".join(FULLWIDTH.get(c, c) for c in value)
    if variant == 4:
        return value.swapcase()
    if variant == 5:
        return value[:position]
    if variant == 6:
        return value * (2 + choices.below(200))
    if variant == 7 and value:
        i = min(position, len(value) - 1)
        return value[:i] + chr((ord(value[i]) + 1) % 0x110000) + value[i + 1 :]
    if variant == 8:
        return ""
    if variant == 9 and vocabulary.strings:
        return str(pick(choices, vocabulary.strings))
    return value + value[:position]


def _number_variant(text: str, choices: Choices) -> str:
    if choices.below(3) == 0:
        try:
            number = int(text)
        except ValueError:
            return pick(choices, NUMBERS)
        return str(number + pick(choices, (-1, 1, 1000, -(2**53), 2**53)))
    return pick(choices, NUMBERS)


def _fresh_value(choices: Choices, vocabulary: Vocabulary) -> Any:
    kind = choices.below(8)
    if kind == 0:
        return None
    if kind == 1:
        return bool(choices.below(2))
    if kind == 2:
        return Num(pick(choices, NUMBERS))
    if kind == 3:
        return []
    if kind == 4:
        return Obj()
    if kind == 5 and vocabulary.strings:
        return Str(str(pick(choices, vocabulary.strings)))
    if kind == 6 and vocabulary.keys:
        return Obj([[Str(str(pick(choices, vocabulary.keys))), Str("")]])
    return Str(choices.blob(12).decode("utf-8", "replace"))


@dataclass(frozen=True)
class Vocabulary:
    """Keys and strings that appear in a target's valid inputs: what mutations and generated
    documents put in, so that they get past the first checks."""

    keys: tuple[str, ...] = ()
    strings: tuple[str, ...] = ()

    @classmethod
    def of(cls, seeds: Sequence[bytes]) -> Vocabulary:
        keys: set[str] = set()
        strings: set[str] = set()
        for seed in seeds:
            try:
                root = [parse(seed)]
            except ValueError:
                continue
            for container, index in _slots(root):
                node = container[index]
                if isinstance(node, Str):
                    strings.add(node.value)
                elif isinstance(node, Obj):
                    keys.update(pair[0].value for pair in node.pairs)
        return cls(tuple(sorted(keys)), tuple(sorted(strings)))


# --- JSON-level mutations: each changes ``root[0]`` in place; False if it did not apply ------


def _duplicate_key(root: list[Any], choices: Choices, vocabulary: Vocabulary) -> bool:
    objects = [o for o in _objects(root) if o.pairs]
    if not objects:
        return False
    obj = pick(choices, objects)
    key, value = pick(choices, obj.pairs)
    twin = copy.deepcopy(value) if choices.below(2) else _fresh_value(choices, vocabulary)
    obj.pairs.insert(choices.below(len(obj.pairs) + 1), [Str(key.value, key.style), twin])
    return True


def _reorder_keys(root: list[Any], choices: Choices, vocabulary: Vocabulary) -> bool:
    objects = [o for o in _objects(root) if len(o.pairs) > 1]
    if not objects:
        return False
    obj = pick(choices, objects)
    how = choices.below(3)
    if how == 0:
        obj.pairs.reverse()
    elif how == 1:
        i, j = choices.below(len(obj.pairs)), choices.below(len(obj.pairs))
        obj.pairs[i], obj.pairs[j] = obj.pairs[j], obj.pairs[i]
    else:
        obj.pairs.append(obj.pairs.pop(choices.below(len(obj.pairs))))
    return True


def _add_field(root: list[Any], choices: Choices, vocabulary: Vocabulary) -> bool:
    objects = _objects(root)
    if not objects:
        return False
    obj = pick(choices, objects)
    names = (*vocabulary.keys, "extra", "__proto__", "kind", "")
    obj.pairs.insert(
        choices.below(len(obj.pairs) + 1),
        [Str(pick(choices, names)), _fresh_value(choices, vocabulary)],
    )
    return True


def _drop_field(root: list[Any], choices: Choices, vocabulary: Vocabulary) -> bool:
    objects = [o for o in _objects(root) if o.pairs]
    if not objects:
        return False
    obj = pick(choices, objects)
    del obj.pairs[choices.below(len(obj.pairs))]
    return True


def _rename_key(root: list[Any], choices: Choices, vocabulary: Vocabulary) -> bool:
    objects = [o for o in _objects(root) if o.pairs]
    if not objects:
        return False
    pair = pick(choices, pick(choices, objects).pairs)
    key: Str = pair[0]
    if choices.below(2):
        pair[0] = Str(key.value, pick(choices, ("ascii", "escaped")))
    else:
        pair[0] = Str(_string_variants(key.value, choices, vocabulary))
    return True


def _change_value(root: list[Any], choices: Choices, vocabulary: Vocabulary) -> bool:
    container, index = pick(choices, list(_slots(root)))
    node = container[index]
    if isinstance(node, Str) and choices.below(4):
        if choices.below(3) == 0:
            inner = _mutate_inside(node.value, choices, vocabulary)
            if inner is not None:
                container[index] = Str(inner, node.style)
                return True
        if choices.below(3) == 0:
            container[index] = Str(node.value, pick(choices, ("ascii", "escaped")))
        else:
            container[index] = Str(_string_variants(node.value, choices, vocabulary), node.style)
    elif isinstance(node, Num) and choices.below(4):
        container[index] = Num(_number_variant(node.text, choices))
    elif isinstance(node, Obj | list) and choices.below(3) == 0:
        container[index] = Str(write(node).decode("utf-8", "surrogatepass"))  # as a string
    else:
        container[index] = _fresh_value(choices, vocabulary)
    return True


def _swap_values(root: list[Any], choices: Choices, vocabulary: Vocabulary) -> bool:
    slots = list(_slots(root))[1:]
    if len(slots) < 2:
        return False
    (c1, i1), (c2, i2) = pick(choices, slots), pick(choices, slots)
    c1[i1] = copy.deepcopy(c2[i2])  # copied, not swapped: one may sit inside the other
    return True


DEPTHS = (1, 2, 15, 16, 17, 64, 999, 1000, 1001, 4000, 10_000)
"""Around the depth guard (16) and past Python's recursion limit (1,000 by default; test
runners such as hypothesis raise it by a few thousand while a test runs)."""


def _nest(root: list[Any], choices: Choices, vocabulary: Vocabulary) -> bool:
    container, index = pick(choices, list(_slots(root)))
    key = pick(choices, (None, "k", *vocabulary.keys)) if choices.below(2) else None
    container[index] = Nest(container[index], pick(choices, DEPTHS), key)
    return True


JsonMutation = Callable[[list[Any], Choices, Vocabulary], bool]
JSON_MUTATIONS: tuple[JsonMutation, ...] = (
    _duplicate_key, _reorder_keys, _add_field, _drop_field, _rename_key,
    _change_value, _change_value, _change_value, _swap_values, _nest,
)


def _mutate_inside(text: str, choices: Choices, vocabulary: Vocabulary) -> str | None:
    """A string that holds JSON (a site event sent as a string), mutated inside."""
    if not text.startswith(("{", "[")):
        return None
    try:
        root = [parse(text.encode("utf-8", "surrogatepass"))]
    except (ValueError, RecursionError):
        return None
    pick(choices, JSON_MUTATIONS)(root, choices, vocabulary)
    return write(root[0]).decode("utf-8", "surrogatepass")


def _restyle(choices: Choices) -> Style:
    return Style(
        item_sep=pick(choices, (",", ", ", ",\n  ")),
        key_sep=pick(choices, (":", ": ", " : ")),
        prefix=pick(choices, (b"", b"", b" ", b"\xef\xbb\xbf", b"\n")),
        suffix=pick(choices, (b"", b"", b" ", b"\n", b"x", b"{}", b"\x00")),
    )


# --- byte-level mutations ------------------------------------------------------------------


def _byte_mutation(data: bytes, pool: Sequence[bytes], choices: Choices) -> bytes:
    position = choices.below(len(data) + 1)
    kind = choices.below(7)
    if kind == 0 and data:
        i = min(position, len(data) - 1)
        return data[:i] + bytes([data[i] ^ (1 << choices.below(8))]) + data[i + 1 :]
    if kind == 1 and data:
        i = min(position, len(data) - 1)
        return data[:i] + pick(choices, TOKENS)[:1] + data[i + 1 :]
    if kind == 2:
        return data[:position] + pick(choices, TOKENS) + data[position:]
    if kind == 3:
        return data[:position] + data[position + 1 + choices.below(16) :]
    if kind == 4:
        end = min(len(data), position + 1 + choices.below(64))
        return data[:end] + data[position:end] + data[end:]
    if kind == 5 and pool:
        other = pick(choices, pool)
        cut = choices.below(len(other) + 1)
        return data[:position] + other[cut:]
    return data[:position] + choices.blob(8) + data[position:]


def mutate(
    data: bytes, pool: Sequence[bytes], choices: Choices, vocabulary: Vocabulary
) -> bytes:
    """``data`` after one to three mutations, JSON-level when it parses, else byte-level."""
    for _ in range(1 + choices.below(3)):
        data = _mutate_once(data, pool, choices, vocabulary)
    return data


def _mutate_once(
    data: bytes, pool: Sequence[bytes], choices: Choices, vocabulary: Vocabulary
) -> bytes:
    if choices.below(3) == 0:
        return _byte_mutation(data, pool, choices)
    try:
        root = [parse(data)]
        kind = choices.below(len(JSON_MUTATIONS) + 1)
        if kind == len(JSON_MUTATIONS):
            return write(root[0], _restyle(choices))
        if JSON_MUTATIONS[kind](root, choices, vocabulary):
            return write(root[0])
    except (ValueError, RecursionError):
        pass  # not JSON (any more): bytes it is
    return _byte_mutation(data, pool, choices)


__all__ = ["Choices", "RandomChoices", "Vocabulary", "mutate", "parse", "write"]
