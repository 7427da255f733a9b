"""Fuzzing every message decoder: the wire protocol (stream.protocol) and the Trigno client's parsers.

``python -m stream.fuzz --examples 10000`` runs each target with that many hypothesis examples and
prints one JSON object (examples, accepted, refused and seconds per target); it exits 1, printing the
shrunk failing example, when a decoder raises anything but its own refusal. ``tests/test_fuzz.py``
runs the same targets with a few hundred examples in the default test run.

Each target draws a mix of inputs: random bytes, valid messages with random byte-level mutations
(flip, insert, delete, overwrite, truncate), valid messages with one structured change (a field
deleted or replaced by a random msgpack value, anywhere in the nesting), and random text for the
Trigno command port. The rule checked: a decoder either refuses with its documented error
(``ProtocolError``; ``TrignoProtocolError`` / ``TrignoSetupError`` / ``TrignoConnectionError``) or
returns something that satisfies the invariants its callers rely on (shapes, dtypes, finite values,
indices in range). Anything else (a TypeError, an OverflowError, a hang) is a bug.

Needs hypothesis (a test dependency): this module is a tool, never imported by the daemons.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from stream.config import Config
from stream.frames import Frame
from stream.protocol import (
    SCHEMA_VERSION,
    FrameEncoder,
    FrameSpec,
    ProtocolError,
    decode_event,
    decode_frame,
    decode_map_message,
    decode_prediction,
    decode_status,
    decode_truth,
    encode_event,
    encode_prediction,
    encode_status,
    encode_truth,
)
from stream.sources.trigno import settings_from_config
from stream.trigno.client import TrignoConnectionError, TrignoSetupError, check_setup, describe_base
from stream.trigno.convert import RowDecoder, SlotMapping
from stream.trigno.emulated_base import EmulatedBase
from stream.trigno.protocol import (
    BANNER_PREFIX,
    IMU_LAYOUT,
    LEGACY_LAYOUT,
    MAX_REPLY_BYTES,
    TERMINATOR,
    MessageSplitter,
    TrignoProtocolError,
    check_reply,
    exact_rate,
    parse_banner,
    parse_float,
    parse_int,
    parse_yes_no,
    unit_factor,
)

SPEC = FrameSpec.from_config(Config())
REFUSED, ACCEPTED = "refused", "accepted"

# ------------------------------------------------------------------------------ valid messages


def valid_frame_message(seed: int = 0) -> list[bytes]:
    generator = np.random.default_rng(seed)
    frame = Frame(7, 105, 14, generator.normal(size=(15, 6)).astype(np.float32),
                  generator.normal(size=(2, 18)).astype(np.float32), generator.normal(size=(2, 18)).astype(np.float32))
    return FrameEncoder(SPEC, session="0123456789abcdef").encode(frame, published_wall=1.7e9)


def _span() -> dict:
    return {"start_index": 100, "end_index": 160, "rate": "2000/27", "start_time_s": 1.35, "end_time_s": 2.16,
            "start_wall": 1.7e9 + 1.35, "end_wall": 1.7e9 + 2.16}


def _common(seq: int = 3) -> dict:
    return {"seq": seq, "session": "0123456789abcdef", "t_wall": 1.7e9}


def valid_prediction() -> dict:
    probabilities = [0.0] * 50
    probabilities[3], probabilities[4] = 0.9, 0.1
    return {**_common(), **_span(), "model_id": "student-test", "class_index": 3, "label": "hello",
            "confidence": 0.9, "probabilities": probabilities, "timing": {"dsp_ms": 0.02, "inference_ms": 0.3}}


def valid_event() -> dict:
    prediction = valid_prediction()
    del prediction["probabilities"]
    return prediction


def valid_status() -> dict:
    return {**_common(), "daemon": "stream-infer", "state": "running", "pid": 1234, "host": "pi", "uptime_s": 12.5,
            "counters": {"frames": 1000, "bad_messages": 0, "frame_processing_ms_p99": 0.04}, "info": {"model_id": "m"}}


def valid_truth() -> dict:
    return {**_common(), "label": "hello", "start_index": 555, "end_index": 1111, "rate": "10000/9",
            "start_time_s": 0.4995, "end_time_s": 0.9999}


# ------------------------------------------------------------------------------ strategies

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


def _pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def map_messages(topic: bytes, mapping: dict) -> st.SearchStrategy[list]:
    packed = _pack({"v": SCHEMA_VERSION, **mapping})
    topics = st.sampled_from([topic, topic, b"frame", b"prediction", b"event", b"status", b"truth", b""]) | st.binary(max_size=12)
    return st.one_of(
        st.lists(st.binary(max_size=200), max_size=4).map(lambda parts: [topic, *parts]),
        mutated_bytes(packed).map(lambda data: [topic, data]),
        changed_maps({"v": SCHEMA_VERSION, **mapping}).map(lambda changed: [topic, _pack(changed)]),
        st.tuples(topics, st.lists(st.binary(max_size=64), max_size=3)).map(lambda pair: [pair[0], packed, *pair[1]]),
        msgpack_values.map(lambda value: [topic, _pack(value)]),
    )


def frame_messages() -> st.SearchStrategy[list]:
    topic, header, payload = valid_frame_message()
    header_map = msgpack.unpackb(header)
    return st.one_of(
        st.lists(st.binary(max_size=600), max_size=4).map(lambda parts: [topic, *parts]),
        mutated_bytes(header).map(lambda data: [topic, data, payload]),
        mutated_bytes(payload).map(lambda data: [topic, header, data]),
        changed_maps(header_map).map(lambda changed: [topic, _pack(changed), payload]),
        # Any float32 bit pattern in the samples: NaN is a dropout, inf must be refused.
        st.binary(min_size=len(payload), max_size=len(payload)).map(lambda data: [topic, header, data]),
        msgpack_values.map(lambda value: [topic, _pack(value), payload]),
    )


# ------------------------------------------------------------------------------ protocol checks


def check_frame(parts: list) -> str:
    try:
        header, frame = decode_frame(parts, SPEC)
    except ProtocolError:
        return REFUSED
    frame.validate()  # shapes and dtypes a consumer can index without checking
    assert frame.emg.shape == (15, 6) and frame.acc.shape == (2, 18) and frame.gyro.shape == (2, 18)
    for array in (frame.emg, frame.acc, frame.gyro):
        assert array.dtype == np.float32 and array.flags.writeable and not np.isinf(array).any()
    assert isinstance(header.sequence, int) and header.sequence >= 0 and math.isfinite(header.published_wall)
    return ACCEPTED


def _check_map_fields(mapping: dict) -> None:
    assert mapping["v"] == SCHEMA_VERSION and isinstance(mapping["seq"], int) and mapping["seq"] >= 0
    assert isinstance(mapping["session"], str) and math.isfinite(mapping["t_wall"])


def _check_classified(mapping: dict) -> None:
    _check_map_fields(mapping)
    assert 0 <= mapping["start_index"] < mapping["end_index"]
    assert 0.0 <= mapping["confidence"] <= 1.0 and isinstance(mapping["label"], str)
    assert isinstance(mapping["class_index"], int) and mapping["class_index"] >= 0


def map_check(decoder: Callable[[list], dict], invariant: Callable[[dict], None]) -> Callable[[list], str]:
    def check(parts: list) -> str:
        try:
            mapping = decoder(parts)
        except ProtocolError:
            return REFUSED
        invariant(mapping)
        return ACCEPTED

    return check


def _prediction_invariant(mapping: dict) -> None:
    _check_classified(mapping)
    assert mapping["class_index"] < len(mapping["probabilities"])


def _status_invariant(mapping: dict) -> None:
    _check_map_fields(mapping)
    assert all(isinstance(key, str) for key in mapping["counters"])


def _truth_invariant(mapping: dict) -> None:
    _check_map_fields(mapping)
    assert 0 <= mapping["start_index"] < mapping["end_index"] and isinstance(mapping["label"], str)


def _any_map_invariant(result) -> None:
    topic, mapping = result
    assert topic in (b"prediction", b"event", b"status", b"truth")
    _check_map_fields(mapping)


# ------------------------------------------------------------------------------ Trigno checks

TRIGNO_ERRORS = (TrignoProtocolError, TrignoSetupError, TrignoConnectionError)
VALID_REPLIES = ("OK", "YES", "NO", "UPSAMPLING OFF", "0.0135", "15", "2", "1111.111", "148.148", "1.000", "V", "g",
                 "deg/s", "INVALID COMMAND", "CANNOT COMPLETE", f"{BANNER_PREFIX} 3.6.0", "40", "O", "7")
command_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(VALID_REPLIES),
    st.sampled_from(VALID_REPLIES).flatmap(lambda reply: mutated_bytes(reply.encode()).map(
        lambda data: data.decode("latin-1"))),
    st.from_regex(r"\A[ -~]{0,40}\Z"),
    st.floats().map(repr), st.integers().map(str),
)


def check_command_stream(chunks: list[bytes]) -> str:
    splitter = MessageSplitter()
    try:
        for chunk in chunks:
            for message in splitter.feed(chunk):
                assert isinstance(message, str) and "\r\n\r\n" not in message
    except TrignoProtocolError:
        return REFUSED
    assert splitter.pending <= MAX_REPLY_BYTES
    return ACCEPTED


def command_streams() -> st.SearchStrategy[list[bytes]]:
    replies = b"".join(reply.encode() + TERMINATOR for reply in VALID_REPLIES)
    return st.one_of(
        st.lists(st.binary(max_size=300), max_size=20),
        mutated_bytes(replies).flatmap(lambda data: st.lists(st.integers(0, len(data)), max_size=10).map(
            lambda cuts: [data[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)])])),
        st.integers(MAX_REPLY_BYTES - 8, MAX_REPLY_BYTES + 8).map(lambda size: [b"A" * size]),
    )


def check_reply_parsers(reply: str) -> str:
    results = []
    parsers = (
        lambda: parse_banner(reply), lambda: check_reply("X?", reply), lambda: parse_yes_no("X?", reply),
        lambda: parse_int("X?", reply), lambda: exact_rate(parse_float("X?", reply)), lambda: unit_factor(reply),
    )
    for parser in parsers:
        try:
            value = parser()
        except TrignoProtocolError:
            results.append(False)
            continue
        results.append(True)
        if isinstance(value, float):
            assert math.isfinite(value)
    return ACCEPTED if any(results) else REFUSED


class FuzzedSession:
    """A command session whose replies come from a hypothesis draw; silence after the draw runs out
    (as a real base going quiet: the client times out)."""

    protocol_version = "3.6.0"

    def __init__(self, base: EmulatedBase, replacements: dict[int, str], limit: int = 400) -> None:
        self.base, self.replacements, self.limit, self.count = base, replacements, limit, 0

    def query(self, command: str) -> str:
        self.count += 1
        if self.count > self.limit:
            raise TrignoConnectionError("no reply (fuzzed session exhausted)")
        honest = self.base.reply(command)
        return self.replacements.get(self.count, honest)


CLIENT_SETTINGS = settings_from_config(Config())


def check_base_dialogue(replacements: dict[int, str]) -> str:
    session = FuzzedSession(EmulatedBase.with_slots(CLIENT_SETTINGS.slots), replacements)
    try:
        info = describe_base(session, CLIENT_SETTINGS.slots)
        mapping = check_setup(info, CLIENT_SETTINGS)
    except TRIGNO_ERRORS:
        return REFUSED
    assert mapping.slots == CLIENT_SETTINGS.slots
    assert np.isfinite(mapping.emg_factors).all() and np.isfinite(mapping.acc_factors).all()
    return ACCEPTED


dialogues = st.dictionaries(st.integers(1, 120), command_text, max_size=6)


def check_data_rows(draw: tuple[bytes, bytes, bool]) -> str:
    with np.errstate(all="ignore"):  # any bit pattern: NaN and inf arithmetic is expected, not news
        return _check_data_rows(draw)


def _check_data_rows(draw: tuple[bytes, bytes, bool]) -> str:
    emg_bytes, aux_bytes, legacy = draw
    layout = LEGACY_LAYOUT if legacy else IMU_LAYOUT
    emg_rows = np.frombuffer(emg_bytes, dtype="<f4").reshape(15, layout.emg_row_values).copy()
    aux_rows = np.frombuffer(aux_bytes, dtype="<f4").reshape(2, layout.aux_row_values).copy()
    slots = (1, 2, 3, 4, 5, 6)
    decoder = RowDecoder(SlotMapping.build(slots, layout))
    emg, acc, gyro = decoder.decode(emg_rows, aux_rows)  # a float32 past 3.4e35 V is inf in mV: refused downstream
    expected_emg = emg_rows * np.float32(1000.0)
    assert emg.shape == (15, 6) and acc.shape == (2, 18) and gyro.shape == (2, 18)
    assert emg.dtype == acc.dtype == gyro.dtype == np.float32
    for sensor, slot in enumerate(slots):
        silent = not emg_rows[:, slot - 1].any() and not aux_rows[:, (slot - 1) * layout.aux_values_per_slot:
                                                                   slot * layout.aux_values_per_slot].any()
        # A slot of zeros on both ports is a dropout (NaN); anything else is passed on, scaled to mV.
        assert np.isnan(emg[:, sensor]).all() == silent
        if not silent:
            np.testing.assert_array_equal(emg[:, sensor], expected_emg[:, slot - 1])
    if legacy:
        assert np.isnan(gyro).all()
    return ACCEPTED


def data_rows() -> st.SearchStrategy[tuple[bytes, bytes, bool]]:
    def for_layout(legacy: bool):
        layout = LEGACY_LAYOUT if legacy else IMU_LAYOUT
        emg_size, aux_size = 15 * layout.emg_row_bytes, 2 * layout.aux_row_bytes
        sparse = st.lists(st.tuples(st.integers(0, emg_size - 1), st.integers(0, 255)), max_size=12).map(
            lambda writes: _poke(emg_size, writes))
        emg = st.binary(min_size=emg_size, max_size=emg_size) | sparse
        aux = st.binary(min_size=aux_size, max_size=aux_size) | st.just(bytes(aux_size))
        return st.tuples(emg, aux, st.just(legacy))

    return st.booleans().flatmap(for_layout)


def _poke(size: int, writes) -> bytes:
    buffer = bytearray(size)  # mostly zeros: empty slots, dropouts and the odd live value
    for position, value in writes:
        buffer[position] = value
    return bytes(buffer)


def check_emulator_command(command: str) -> str:
    base = EmulatedBase.with_slots((1, 2, 3, 4, 5, 6))
    reply = base.reply(command)
    assert isinstance(reply, str) and reply and "\r" not in reply and "\n" not in reply
    return REFUSED if reply in ("INVALID COMMAND", "CANNOT COMPLETE") else ACCEPTED


emulator_commands = st.one_of(
    command_text,
    st.builds(lambda slot, channel, what: f"SENSOR {slot} CHANNEL {channel} {what}",
              st.integers(-5, 10**30), st.integers(-5, 10**30), st.sampled_from(("RATE?", "GAIN?", "UNITS?", "SAMPLES?", "X"))),
    st.builds(lambda slot, what: f"SENSOR {slot} {what}", st.integers(-5, 10**30),
              st.sampled_from(("PAIRED?", "TYPE?", "MODE?", "CHANNELCOUNT?", "STARTINDEX?", "ACTIVE?", "BOGUS"))),
)

# ------------------------------------------------------------------------------ targets


@dataclass(frozen=True)
class Target:
    name: str
    strategy: Callable[[], st.SearchStrategy]
    check: Callable[[object], str]
    what: str


TARGETS = (
    Target("frame", frame_messages, check_frame, "stream.protocol.decode_frame"),
    Target("prediction", lambda: map_messages(b"prediction", valid_prediction()),
           map_check(decode_prediction, _prediction_invariant), "stream.protocol.decode_prediction"),
    Target("event", lambda: map_messages(b"event", valid_event()),
           map_check(decode_event, _check_classified), "stream.protocol.decode_event"),
    Target("status", lambda: map_messages(b"status", valid_status()),
           map_check(decode_status, _status_invariant), "stream.protocol.decode_status"),
    Target("truth", lambda: map_messages(b"truth", valid_truth()),
           map_check(decode_truth, _truth_invariant), "stream.protocol.decode_truth"),
    Target("any_map", lambda: st.one_of(map_messages(b"event", valid_event()), map_messages(b"status", valid_status()),
                                        map_messages(b"truth", valid_truth())),
           map_check(decode_map_message, _any_map_invariant), "stream.protocol.decode_map_message (by topic)"),
    Target("trigno_command_stream", command_streams, check_command_stream,
           "stream.trigno.protocol.MessageSplitter.feed (command-port framing)"),
    Target("trigno_replies", lambda: command_text, check_reply_parsers,
           "stream.trigno.protocol parse_banner/check_reply/parse_yes_no/parse_int/parse_float+exact_rate/unit_factor"),
    Target("trigno_base_dialogue", lambda: dialogues, check_base_dialogue,
           "stream.trigno.client describe_base + check_setup with fuzzed replies"),
    Target("trigno_data_rows", data_rows, check_data_rows, "stream.trigno.convert.RowDecoder.decode (data ports)"),
    Target("trigno_emulator_commands", lambda: emulator_commands, check_emulator_command,
           "stream.trigno.emulated_base.EmulatedBase.reply"),
)
TARGETS_BY_NAME = {target.name: target for target in TARGETS}


def run_target(target: Target, examples: int, seed: int | None = None) -> dict:
    """Run ``examples`` hypothesis examples of one target; raises (after shrinking) on a failure."""
    outcomes: Counter[str] = Counter()

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              print_blob=True)
    @given(target.strategy())
    def fuzz(message) -> None:
        outcomes[target.check(message)] += 1

    if seed is not None:
        fuzz = hypothesis_seed(seed)(fuzz)
    started = time.perf_counter()
    fuzz()
    return {"decoder": target.what, "examples": sum(outcomes.values()), "accepted": outcomes[ACCEPTED],
            "refused": outcomes[REFUSED], "seconds": round(time.perf_counter() - started, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10000, help="hypothesis examples per target")
    parser.add_argument("--only", action="append", choices=sorted(TARGETS_BY_NAME), help="run only this target")
    parser.add_argument("--seed", type=int, default=None, help="fix hypothesis' seed (reproducible run)")
    arguments = parser.parse_args(argv)
    chosen = [TARGETS_BY_NAME[name] for name in arguments.only] if arguments.only else list(TARGETS)
    results, failed = {}, []
    for target in chosen:
        try:
            results[target.name] = run_target(target, arguments.examples, arguments.seed)
        except Exception as error:  # report the shrunk example (hypothesis raised it) and go on
            traceback.print_exc()
            failed.append(target.name)
            results[target.name] = {"decoder": target.what, "error": f"{type(error).__name__}: {error}"[:500]}
        print(f"{target.name}: {results[target.name]}", file=sys.stderr, flush=True)
    print(json.dumps({"examples_per_target": arguments.examples, "targets": results, "failed": failed}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
