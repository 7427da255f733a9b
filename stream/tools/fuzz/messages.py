"""Wire-protocol fuzz targets (stream.wire.protocol): valid messages of each kind, strategies that break
them, and the checks: a decoder refuses with ``ProtocolError`` or returns what its callers rely on."""

from __future__ import annotations

import math
from collections.abc import Callable

import msgpack
import numpy as np
from hypothesis import strategies as st

from stream.config import Config
from stream.tools.fuzz.mutations import changed_maps, msgpack_values, mutated_bytes, pack
from stream.tools.fuzz.outcomes import ACCEPTED, REFUSED
from stream.wire.frames import Frame
from stream.wire.protocol import SCHEMA_VERSION, FrameDecoder, FrameEncoder, FrameSpec, ProtocolError, decode_frame

SPEC = FrameSpec.from_config(Config())

# ------------------------------------------------------------------------------ valid messages


def valid_frame_message(seed: int = 0) -> list[bytes]:
    generator = np.random.default_rng(seed)
    frame = Frame(7, 105, 14, generator.normal(size=(15, 6)).astype(np.float32),
                  generator.normal(size=(2, 18)).astype(np.float32), generator.normal(size=(2, 18)).astype(np.float32))
    return FrameEncoder(SPEC, session="0123456789abcdef").encode(frame, published_wall=1.7e9)


def valid_description() -> dict:
    """The stream description of SPEC's frames, without the keys every map has."""
    description = msgpack.unpackb(FrameEncoder(SPEC, session="0123456789abcdef").encode_description(1.7e9)[1])
    return {key: value for key, value in description.items() if key != "v"}


def _span() -> dict:
    return {"start_index": 100, "end_index": 160, "rate": "2000/27", "start_time_s": 1.35, "end_time_s": 2.16,
            "start_wall": 1.7e9 + 1.35, "end_wall": 1.7e9 + 2.16, "source_session": "fedcba9876543210"}


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


def map_messages(topic: bytes, mapping: dict) -> st.SearchStrategy[list]:
    packed = pack({"v": SCHEMA_VERSION, **mapping})
    topics = st.sampled_from([topic, topic, b"frame", b"prediction", b"event", b"status", b"truth", b""]) | st.binary(max_size=12)
    return st.one_of(
        st.lists(st.binary(max_size=200), max_size=4).map(lambda parts: [topic, *parts]),
        mutated_bytes(packed).map(lambda data: [topic, data]),
        changed_maps({"v": SCHEMA_VERSION, **mapping}).map(lambda changed: [topic, pack(changed)]),
        st.tuples(topics, st.lists(st.binary(max_size=64), max_size=3)).map(lambda pair: [pair[0], packed, *pair[1]]),
        msgpack_values.map(lambda value: [topic, pack(value)]),
    )


def frame_messages() -> st.SearchStrategy[list]:
    topic, header, payload = valid_frame_message()
    header_map = msgpack.unpackb(header)
    return st.one_of(
        st.lists(st.binary(max_size=600), max_size=4).map(lambda parts: [topic, *parts]),
        mutated_bytes(header).map(lambda data: [topic, data, payload]),
        mutated_bytes(payload).map(lambda data: [topic, header, data]),
        changed_maps(header_map).map(lambda changed: [topic, pack(changed), payload]),
        # Any float32 bit pattern in the samples: NaN is a dropout, inf must be refused.
        st.binary(min_size=len(payload), max_size=len(payload)).map(lambda data: [topic, header, data]),
        msgpack_values.map(lambda value: [topic, pack(value), payload]),
    )


# ------------------------------------------------------------------------------ protocol checks


def check_frame(parts: list) -> str:
    try:
        header, frame = decode_frame(parts, SPEC)
    except ProtocolError:
        return REFUSED
    frame.validate(SPEC.layout)  # shapes and dtypes a consumer can index without checking
    assert frame.emg.shape == (15, 6) and frame.acc.shape == (2, 18) and frame.gyro.shape == (2, 18)
    for array in (frame.emg, frame.acc, frame.gyro):
        assert array.dtype == np.float32 and array.flags.writeable and not np.isinf(array).any()
    assert isinstance(header.sequence, int) and header.sequence >= 0 and math.isfinite(header.published_wall)
    return ACCEPTED


def _check_map_fields(mapping: dict) -> None:
    assert mapping["v"] == SCHEMA_VERSION and isinstance(mapping["seq"], int) and mapping["seq"] >= 0
    assert isinstance(mapping["session"], str) and math.isfinite(mapping["t_wall"])


def check_classified(mapping: dict) -> None:
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


def prediction_invariant(mapping: dict) -> None:
    check_classified(mapping)
    assert mapping["class_index"] < len(mapping["probabilities"])


def status_invariant(mapping: dict) -> None:
    _check_map_fields(mapping)
    assert all(isinstance(key, str) for key in mapping["counters"])


def description_invariant(mapping: dict) -> None:
    """What stream-infer relies on when it explains a refused frame from a description it heard."""
    _check_map_fields(mapping)
    assert isinstance(mapping["id"], str) and isinstance(mapping["payload_bytes"], int)
    for stream in mapping["streams"]:
        assert len(stream["shape"]) == 2 and len(stream["channels"]) == stream["shape"][1]
    problem = FrameDecoder(SPEC).mismatch(mapping)
    assert problem is None or isinstance(problem, str)


def truth_invariant(mapping: dict) -> None:
    _check_map_fields(mapping)
    assert 0 <= mapping["start_index"] < mapping["end_index"] and isinstance(mapping["label"], str)


def any_map_invariant(result) -> None:
    topic, mapping = result
    assert topic in (b"description", b"prediction", b"event", b"status", b"truth")
    _check_map_fields(mapping)
