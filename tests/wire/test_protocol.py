"""The wire format: round trips, strict validation with clear errors, fuzzed decoders."""

from __future__ import annotations

import math

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.config import Config
from stream.wire.frames import Frame
from stream.wire.layout import Layout
from stream.wire.protocol import (
    SCHEMA_VERSION,
    FrameEncoder,
    FrameSpec,
    ProtocolError,
    SequenceTracker,
    decode_event,
    decode_frame,
    decode_map_message,
    decode_prediction,
    decode_status,
    encode_event,
    encode_prediction,
    encode_status,
)

SPEC = FrameSpec.from_config(Config())


def make_frame(sequence: int = 7, seed: int = 0) -> Frame:
    generator = np.random.default_rng(seed)
    return Frame(
        sequence=sequence,
        emg_first_index=15 * sequence,
        imu_first_index=2 * sequence,
        emg=generator.normal(size=(15, 6)).astype(np.float32),
        acc=generator.normal(size=(2, 18)).astype(np.float32),
        gyro=generator.normal(size=(2, 18)).astype(np.float32),
    )


def prediction_map(**overrides) -> dict:
    probabilities = [0.0] * 50
    probabilities[3] = 0.9
    probabilities[4] = 0.1
    mapping = {
        "seq": 0, "session": "abc", "source_session": "run", "t_wall": 1.0e9, "model_id": "student-test", "class_index": 3,
        "label": "hello", "confidence": 0.9, "probabilities": probabilities, "start_index": 100,
        "end_index": 160, "rate": "2000/27", "start_time_s": 1.35, "end_time_s": 2.16,
        "start_wall": 1.0e9 + 1.35, "end_wall": 1.0e9 + 2.16, "timing": {"dsp_ms": 0.02},
    }
    mapping.update(overrides)
    return mapping


def test_frame_round_trip_is_exact_and_little_endian():
    frame = make_frame()
    parts = FrameEncoder(SPEC, session="s1").encode(frame, published_wall=123.5)
    assert parts[0] == b"frame"
    header = msgpack.unpackb(parts[1])
    assert header["v"] == SCHEMA_VERSION
    assert [stream["modality"] for stream in header["streams"]] == ["emg", "acc", "gyro"]
    assert header["streams"][0]["rate"] == "10000/9" and header["streams"][1]["rate"] == "4000/27"
    # The payload is the raw little-endian float32 arrays, concatenated in header order.
    assert parts[2] == frame.emg.astype("<f4").tobytes() + frame.acc.astype("<f4").tobytes() + frame.gyro.astype("<f4").tobytes()
    decoded_header, decoded = decode_frame(parts, SPEC)
    assert (decoded_header.sequence, decoded_header.session, decoded_header.published_wall) == (7, "s1", 123.5)
    assert decoded.emg_first_index == 105 and decoded.imu_first_index == 14
    for name in ("emg", "acc", "gyro"):
        np.testing.assert_array_equal(getattr(decoded, name), getattr(frame, name))
        assert getattr(decoded, name).flags.writeable


def test_frame_with_nan_dropout_is_accepted_but_inf_is_refused():
    frame = make_frame()
    frame.emg[:, 2] = np.nan
    _, decoded = decode_frame(FrameEncoder(SPEC).encode(frame), SPEC)
    assert np.isnan(decoded.emg[:, 2]).all()
    frame.acc[0, 0] = np.inf
    with pytest.raises(ProtocolError, match="infinite"):
        decode_frame(FrameEncoder(SPEC).encode(frame), SPEC)


def _tamper(parts, mutate):
    header = msgpack.unpackb(parts[1])
    mutate(header)
    return [parts[0], msgpack.packb(header), parts[2]]


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda h: h.update(v=2), "schema version 2"),
        (lambda h: h.pop("seq"), "missing key 'seq'"),
        (lambda h: h.update(seq=-1), "seq = -1 must be >= 0"),
        (lambda h: h["streams"][0].update(dtype=">f4"), "little-endian float32"),
        (lambda h: h["streams"][0].update(shape=[16, 6]), "shape [16, 6]"),
        (lambda h: h["streams"][1].update(rate="4000/28"), "rate 4000/28 Hz"),
        (lambda h: h["streams"][2].update(channels=["x"] * 18), "channel names"),
        (lambda h: h["streams"][2].update(offset=10_000), "past the"),
        (lambda h: h["streams"].pop(), "2 streams"),
        (lambda h: h["streams"][2].update(first_index=99), "acc and gyro first_index differ"),
    ],
)
def test_bad_frame_headers_are_refused_with_the_reason(mutate, fragment):
    parts = _tamper(FrameEncoder(SPEC).encode(make_frame()), mutate)
    with pytest.raises(ProtocolError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        decode_frame(parts, SPEC)


def test_truncated_payload_and_wrong_part_counts_are_refused():
    parts = FrameEncoder(SPEC).encode(make_frame())
    with pytest.raises(ProtocolError, match="past the"):
        decode_frame([parts[0], parts[1], parts[2][:-4]], SPEC)
    with pytest.raises(ProtocolError, match="payload"):
        decode_frame([parts[0], parts[1], parts[2] + b"\0\0\0\0"], SPEC)
    with pytest.raises(ProtocolError, match="expected 3 parts"):
        decode_frame(parts[:2], SPEC)
    with pytest.raises(ProtocolError, match="topic"):
        decode_frame([b"event", parts[1], parts[2]], SPEC)


def test_a_frame_for_other_sensors_is_refused():
    other = FrameSpec(Layout(("a", "b"), ("a", "b"), ("emg", "acc", "gyro"), SPEC.emg_rate_hz, SPEC.imu_rate_hz))
    frame = make_frame()
    frame = Frame(0, 0, 0, frame.emg[:, :2].copy(), frame.acc[:, :6].copy(), frame.gyro[:, :6].copy())
    with pytest.raises(ProtocolError, match="shape"):
        decode_frame(FrameEncoder(other).encode(frame), SPEC)


def test_oversized_and_non_map_headers_are_refused_before_use():
    parts = FrameEncoder(SPEC).encode(make_frame())
    with pytest.raises(ProtocolError, match="over the"):
        decode_frame([parts[0], b"\x80" + b"\0" * 70_000, parts[2]], SPEC)
    with pytest.raises(ProtocolError, match="expected a msgpack map"):
        decode_frame([parts[0], msgpack.packb([1, 2]), parts[2]], SPEC)
    # msgpack extension types (e.g. timestamps) are refused: nothing gets constructed from a message.
    with pytest.raises(ProtocolError, match="not a valid msgpack"):
        decode_frame([parts[0], msgpack.packb({"v": 1, "t": msgpack.ExtType(5, b"x")}), parts[2]], SPEC)
    # A declared string length far beyond the limit is refused by the unpacker.
    with pytest.raises(ProtocolError, match="not a valid msgpack"):
        decode_status([b"status", msgpack.packb({"v": 1, "daemon": "x" * 5000})])


def test_prediction_event_status_round_trip():
    prediction = prediction_map()
    assert decode_prediction(encode_prediction(prediction)) == {"v": SCHEMA_VERSION, **prediction}
    event = {key: prediction[key] for key in prediction if key != "probabilities"}
    assert decode_event(encode_event(event))["label"] == "hello"
    status = {"seq": 1, "session": "s", "t_wall": 5.0, "daemon": "stream-infer", "state": "running",
              "pid": 42, "uptime_s": 1.5, "counters": {"frames": 10, "inference_ms_p99": 0.4}}
    topic, decoded = decode_map_message(encode_status(status))
    assert topic == b"status" and decoded["counters"]["frames"] == 10


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"confidence": math.nan}, "must be finite"),
        ({"confidence": 1.5}, "within"),
        ({"class_index": 50}, "past 50 classes"),
        ({"end_index": 100}, "must be > start_index"),
        ({"label": 7}, "must be a string"),
        ({"probabilities": [0.5, math.nan]}, "finite numbers"),
        ({"probabilities": "abc"}, "non-empty list"),
        ({"v": 0}, "schema version 0"),
        ({"rate": "fast"}, "rate"),
        ({"timing": {"dsp_ms": "slow"}}, "timing"),
    ],
)
def test_bad_predictions_are_refused_with_the_reason(overrides, fragment):
    with pytest.raises(ProtocolError, match=fragment):
        decode_prediction([b"prediction", msgpack.packb({"v": SCHEMA_VERSION, **prediction_map(**overrides)})])


def test_unknown_topic_and_empty_message():
    with pytest.raises(ProtocolError, match="unknown topic"):
        decode_map_message([b"nonsense", b"\x80"])
    with pytest.raises(ProtocolError, match="empty"):
        decode_map_message([])


_parts = st.lists(st.binary(max_size=300), min_size=0, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=_parts, topic=st.sampled_from([b"frame", b"prediction", b"event", b"status", b"truth", b"x"]))
def test_decoders_raise_only_protocol_error_on_random_bytes(parts, topic):
    message = [topic, *parts]
    for decoder in (lambda m: decode_frame(m, SPEC), decode_map_message):
        try:
            decoder(message)
        except ProtocolError:
            pass


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(mapping=st.dictionaries(st.sampled_from(list(prediction_map()) + ["v", "streams"]), _values, max_size=12))
def test_decoders_raise_only_protocol_error_on_random_maps(mapping):
    for topic in (b"prediction", b"event", b"status", b"truth"):
        try:
            decode_map_message([topic, msgpack.packb(mapping)])
        except ProtocolError:
            pass
    try:
        decode_frame([b"frame", msgpack.packb(mapping), b"\0" * 16], SPEC)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(list(prediction_map())), value=_values)
def test_any_single_field_corruption_is_refused_or_still_valid(key, value):
    mapping = {"v": SCHEMA_VERSION, **prediction_map(**{key: value})}
    try:
        decoded = decode_prediction([b"prediction", msgpack.packb(mapping)])
    except ProtocolError:
        return
    # Whatever was accepted is usable: a finite confidence in [0, 1] and an index inside the list.
    assert 0 <= decoded["confidence"] <= 1 and decoded["class_index"] < len(decoded["probabilities"])


def test_sequence_tracker_counts_gaps_restarts_and_old_messages():
    tracker = SequenceTracker()
    assert [tracker.observe("a", n) for n in (0, 1, 2, 5, 6)] == ["first", "ok", "ok", "gap", "ok"]
    assert tracker.missed == 2 and tracker.gaps == 1
    assert tracker.observe("b", 0) == "restart" and tracker.restarts == 1
    assert tracker.observe("b", 0) == "old" and tracker.out_of_order == 1


def test_a_reader_written_from_the_doc_alone_decodes_frames_and_events():
    """docs/protocol.md's recipe, without stream.wire.protocol: msgpack + little-endian float32 at offsets."""
    import re
    import struct
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    example = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    compile(example, "protocol.md example", "exec")  # the example subscriber is valid Python
    frame = make_frame()
    topic, header_bytes, payload = FrameEncoder(SPEC).encode(frame)
    header = msgpack.unpackb(header_bytes, raw=False)
    assert topic == b"frame" and header["v"] == 1
    for stream in header["streams"]:
        rows, columns = stream["shape"]
        values = struct.unpack_from(f"<{rows * columns}f", payload, stream["offset"])
        expected = getattr(frame, stream["modality"])
        assert np.array_equal(np.array(values, dtype=np.float32).reshape(rows, columns), expected)
        assert len(stream["channels"]) == columns
    assert 15 * 6 * 4 + 2 * 2 * 18 * 4 == len(payload) == 648
