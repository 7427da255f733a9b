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
    FrameDecoder,
    FrameEncoder,
    FrameSpec,
    ProtocolError,
    SequenceTracker,
    decode_description,
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
    assert header == {"v": SCHEMA_VERSION, "seq": 7, "session": "s1", "t_wall": 123.5, "description": SPEC.description_id,
                      "emg_first_index": 105, "imu_first_index": 14}
    assert len(parts[1]) < 128  # a few integers; what the streams are is said once, in the description
    # The payload is the raw little-endian float32 arrays, concatenated in the description's order.
    assert parts[2] == frame.emg.astype("<f4").tobytes() + frame.acc.astype("<f4").tobytes() + frame.gyro.astype("<f4").tobytes()
    decoded_header, decoded = decode_frame(parts, SPEC)
    assert (decoded_header.sequence, decoded_header.session, decoded_header.published_wall) == (7, "s1", 123.5)
    assert decoded.emg_first_index == 105 and decoded.imu_first_index == 14
    for name in ("emg", "acc", "gyro"):
        np.testing.assert_array_equal(getattr(decoded, name), getattr(frame, name))
        assert getattr(decoded, name).flags.writeable and getattr(decoded, name).flags.c_contiguous
    assert not decoded_header.dropout


def test_the_description_message_says_what_the_frames_hold():
    encoder = FrameEncoder(SPEC, session="s1")
    parts = encoder.encode_description(published_wall=123.0)
    assert parts[0] == b"description" and len(parts) == 2
    description = decode_description(parts)
    assert (description["v"], description["seq"], description["session"]) == (SCHEMA_VERSION, 0, "s1")
    assert description["id"] == SPEC.description_id and description["payload_bytes"] == 648
    assert description["layout"] == SPEC.layout.describe()
    streams = description["streams"]
    assert [stream["modality"] for stream in streams] == ["emg", "acc", "gyro"]
    assert [stream["rate"] for stream in streams] == ["10000/9", "4000/27", "4000/27"]
    assert [stream["shape"] for stream in streams] == [[15, 6], [2, 18], [2, 18]]
    assert [stream["offset"] for stream in streams] == [0, 360, 504]
    assert streams[0]["channels"][0] == "flexor_carpi_radialis.emg" and len(streams[2]["channels"]) == 18
    assert decode_description(encoder.encode_description())["seq"] == 1  # its own sequence
    assert decode_map_message(parts)[0] == b"description"


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d.update(id="0" * 16), "is not the id of its streams"),
        (lambda d: d["streams"][1].update(offset=0), "offset 0; the streams before it end at byte 360"),
        (lambda d: d.update(payload_bytes=600), "payload_bytes 600; the streams hold 648"),
        (lambda d: d["streams"][0].update(channels=["x"]), "channels must be 6 names"),
        (lambda d: d["streams"][0].update(dtype=">f4"), "little-endian float32"),
        (lambda d: d["streams"][0].update(shape=[15]), "must be \\[samples, channels\\]"),
        (lambda d: d["streams"][0].update(rate="fast"), "rate"),
    ],
)
def test_a_bad_description_is_refused_with_the_reason(mutate, fragment):
    parts = FrameEncoder(SPEC).encode_description()
    description = msgpack.unpackb(parts[1])
    mutate(description)
    with pytest.raises(ProtocolError, match=fragment):
        decode_description([parts[0], msgpack.packb(description)])


def test_frame_with_nan_dropout_is_accepted_but_inf_is_refused():
    frame = make_frame()
    frame.emg[:, 2] = np.nan
    header, decoded = decode_frame(FrameEncoder(SPEC).encode(frame), SPEC)
    assert np.isnan(decoded.emg[:, 2]).all() and header.dropout
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
        (lambda h: h.update(v=1), "schema version 1 is not supported; this reader speaks 2"),
        (lambda h: h.pop("seq"), "missing key 'seq'"),
        (lambda h: h.update(seq=-1), "seq = -1 must be >= 0"),
        (lambda h: h.update(t_wall=math.inf), "t_wall = inf must be finite"),
        (lambda h: h.update(emg_first_index=-15), "emg_first_index = -15 must be >= 0"),
        (lambda h: h.pop("imu_first_index"), "missing key 'imu_first_index'"),
        (lambda h: h.update(description=7), "description = 7 must be a string"),
        (lambda h: h.update(description="0123456789abcdef"), "stream description '0123456789abcdef' is not the configured"),
    ],
)
def test_bad_frame_headers_are_refused_with_the_reason(mutate, fragment):
    parts = _tamper(FrameEncoder(SPEC).encode(make_frame()), mutate)
    with pytest.raises(ProtocolError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        decode_frame(parts, SPEC)


def test_truncated_payload_and_wrong_part_counts_are_refused():
    parts = FrameEncoder(SPEC).encode(make_frame())
    with pytest.raises(ProtocolError, match="644 bytes; the description says 648"):
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
    with pytest.raises(ProtocolError, match="is not the configured layout's"):
        decode_frame(FrameEncoder(other).encode(frame), SPEC)
    decoder = FrameDecoder(SPEC)
    decoder.observe_description(decode_description(FrameEncoder(other).encode_description()))
    with pytest.raises(ProtocolError, match=r"stream emg: shape \[15, 2\]; expected \[15, 6\]"):
        decoder.decode(FrameEncoder(other).encode(frame))


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
    encoder = FrameEncoder(SPEC)
    topic, description_bytes = encoder.encode_description()
    description = msgpack.unpackb(description_bytes, raw=False)
    topic, header_bytes, payload = encoder.encode(frame)
    header = msgpack.unpackb(header_bytes, raw=False)
    assert topic == b"frame" and header["v"] == 2 and header["description"] == description["id"]
    for stream in description["streams"]:
        rows, columns = stream["shape"]
        values = struct.unpack_from(f"<{rows * columns}f", payload, stream["offset"])
        expected = getattr(frame, stream["modality"])
        assert np.array_equal(np.array(values, dtype=np.float32).reshape(rows, columns), expected)
        assert len(stream["channels"]) == columns
    assert 15 * 6 * 4 + 2 * 2 * 18 * 4 == len(payload) == 648
