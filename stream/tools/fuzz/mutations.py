"""Generic hypothesis strategies: random msgpack values, byte-level mutations of a valid message and
structured changes to a msgpack map (one field anywhere in the nesting deleted or replaced)."""

from __future__ import annotations

import msgpack
from hypothesis import strategies as st

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=24)
    | st.binary(max_size=24),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=24,
)

_mutation = st.tuples(st.sampled_from(("flip", "insert", "delete", "overwrite", "truncate")),
                      st.integers(0, 1 << 16), st.integers(0, 255))


def _mutate_bytes(data: bytes, operations) -> bytes:
    buffer = bytearray(data)
    for kind, position, value in operations:
        if not buffer and kind != "insert":
            continue
        where = position % (len(buffer) + (1 if kind == "insert" else 0))
        if kind == "flip":
            buffer[where] ^= 1 << (value % 8)
        elif kind == "insert":
            buffer[where:where] = bytes([value]) * (1 + value % 4)
        elif kind == "delete":
            del buffer[where:where + 1 + value % 8]
        elif kind == "overwrite":
            buffer[where] = value
        else:
            del buffer[where:]
    return bytes(buffer)


def mutated_bytes(data: bytes) -> st.SearchStrategy[bytes]:
    return st.lists(_mutation, min_size=1, max_size=8).map(lambda operations: _mutate_bytes(data, operations))


def _paths(value, prefix=()) -> list[tuple]:
    """Every (container path, key) in a nested map/list, so any field at any depth can be changed."""
    found = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


def _change(mapping: dict, path: tuple, replacement, delete: bool) -> dict:
    mapping = msgpack.unpackb(msgpack.packb(mapping))  # a deep copy made of plain msgpack values
    container = mapping
    for key in path[:-1]:
        container = container[key]
    if delete:
        del container[path[-1]]
    else:
        container[path[-1]] = replacement
    return mapping


def changed_maps(mapping: dict) -> st.SearchStrategy[dict]:
    """The map with one field anywhere in it deleted or replaced, or with extra random keys."""
    paths = _paths(mapping)
    one_change = st.builds(lambda path, value, delete: _change(mapping, path, value, delete),
                           st.sampled_from(paths), msgpack_values, st.booleans())
    extra_keys = st.dictionaries(st.text(max_size=12), msgpack_values, min_size=1, max_size=4).map(
        lambda extra: {**extra, **mapping})
    return st.one_of(one_change, extra_keys, st.dictionaries(st.sampled_from(sorted(mapping)), msgpack_values))


def pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)
