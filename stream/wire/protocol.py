"""The wire format between the daemons and any subscriber (specified for people in docs/protocol.md).

Every message is a ZeroMQ multipart message whose first part is the topic:

- ``frame``:      [b"frame", msgpack header, raw little-endian payload] one 13.5 ms sensor frame;
- ``prediction``: [b"prediction", msgpack map] class probabilities for one segment;
- ``event``:      [b"event", msgpack map] a recognised sign;
- ``status``:     [b"status", msgpack map] heartbeat with counters, from every daemon;
- ``truth``:      [b"truth", msgpack map] ground truth from a simulated or replayed signer (optional).

Decoding is strict: sizes are checked before unpacking, msgpack runs with explicit limits and no
extension types, every field is type- and range-checked, and any problem raises ``ProtocolError``
whose message says what was wrong. Readers ignore keys they do not know (forward compatibility);
a change that breaks readers bumps ``SCHEMA_VERSION``. No pickle anywhere.
"""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from fractions import Fraction

import msgpack
import numpy as np

from stream.wire.frames import Frame, absent
from stream.wire.layout import Layout
from stream.wire.rates import parse_rate, rate_to_string

SCHEMA_VERSION = 1

TOPIC_FRAME = b"frame"
TOPIC_PREDICTION = b"prediction"
TOPIC_EVENT = b"event"
TOPIC_STATUS = b"status"
TOPIC_TRUTH = b"truth"
TOPICS = (TOPIC_FRAME, TOPIC_PREDICTION, TOPIC_EVENT, TOPIC_STATUS, TOPIC_TRUTH)

WIRE_DTYPE = "<f4"
MAX_HEADER_BYTES = 64 * 1024  # a frame header is about 1.5 kB; maps are smaller still
MAX_MAP_BYTES = 64 * 1024
# Limits handed to msgpack so a hostile message cannot make the unpacker allocate much.
_UNPACK_LIMITS = {
    "max_str_len": 4096,
    "max_bin_len": 0,  # we never put bin inside a msgpack part: payloads travel as their own part
    "max_array_len": 4096,
    "max_map_len": 256,
    "max_ext_len": 0,  # no extension types (no timestamps, nothing to construct)
}


class ProtocolError(ValueError):
    """A message that does not follow docs/protocol.md; the text says what is wrong."""


def new_session_id() -> str:
    """A random id for one run of a publisher: a new id tells readers the publisher restarted."""
    return os.urandom(8).hex()


def _pack(mapping: dict) -> bytes:
    return msgpack.packb(mapping, use_bin_type=True, use_single_float=False)


def _unpack(data: bytes, what: str, limit: int) -> dict:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"{what}: expected bytes, got {type(data).__name__}")
    if len(data) > limit:
        raise ProtocolError(f"{what}: {len(data)} bytes is over the {limit}-byte limit")
    try:
        value = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True, use_list=True, **_UNPACK_LIMITS)
    except Exception as error:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(f"{what}: not a valid msgpack map ({type(error).__name__}: {error})") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what}: expected a msgpack map, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------------- fields

def _field(mapping: dict, key: str, what: str):
    try:
        return mapping[key]
    except KeyError:
        raise ProtocolError(f"{what}: missing key {key!r}") from None


def _int(mapping: dict, key: str, what: str, minimum: int | None = 0) -> int:
    value = _field(mapping, key, what)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{what}: {key} = {value!r} must be an integer")
    if minimum is not None and value < minimum:
        raise ProtocolError(f"{what}: {key} = {value} must be >= {minimum}")
    return value


def _float(mapping: dict, key: str, what: str, low: float | None = None, high: float | None = None) -> float:
    value = _field(mapping, key, what)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{what}: {key} = {value!r} must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise ProtocolError(f"{what}: {key} = {value} must be finite")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ProtocolError(f"{what}: {key} = {value} must be within [{low}, {high}]")
    return value


def _str(mapping: dict, key: str, what: str) -> str:
    value = _field(mapping, key, what)
    if not isinstance(value, str):
        raise ProtocolError(f"{what}: {key} = {value!r} must be a string")
    return value


def _rate(mapping: dict, key: str, what: str) -> Fraction:
    value = _str(mapping, key, what)
    try:
        return parse_rate(value)
    except ValueError as error:
        raise ProtocolError(f"{what}: {key}: {error}") from None


def _check_version(mapping: dict, what: str) -> None:
    version = _field(mapping, "v", what)
    if version != SCHEMA_VERSION:
        raise ProtocolError(f"{what}: schema version {version!r} is not supported; this reader speaks {SCHEMA_VERSION}")


def _check_topic(parts: list, topic: bytes, count: int) -> None:
    if not isinstance(parts, (list, tuple)) or len(parts) != count:
        length = len(parts) if isinstance(parts, (list, tuple)) else "?"
        raise ProtocolError(f"{topic.decode()} message: expected {count} parts, got {length}")
    if bytes(parts[0]) != topic:
        raise ProtocolError(f"expected topic {topic!r}, got {bytes(parts[0])[:32]!r}")


# ---------------------------------------------------------------------------------------- frames

@dataclass(frozen=True)
class FrameSpec:
    """What a reader expects of frames: the sensor layout (streams, channel names, exact rates)."""

    layout: Layout

    @classmethod
    def from_config(cls, config) -> "FrameSpec":
        return cls(Layout.from_sensors(config.sensors))

    @property
    def sensor_names(self) -> tuple[str, ...]:
        return self.layout.sensor_names

    @property
    def emg_rate_hz(self) -> Fraction:
        return self.layout.emg_rate_hz

    @property
    def imu_rate_hz(self) -> Fraction:
        return self.layout.imu_rate_hz

    def stream_descriptions(self) -> list[dict]:
        """The static part of each stream's header entry, in payload order (the layout's modalities)."""
        return [
            {
                "modality": stream.modality,
                "rate": rate_to_string(stream.rate_hz),
                "dtype": WIRE_DTYPE,
                "shape": [stream.samples_per_frame, len(stream.channels)],
                "channels": list(stream.channels),
            }
            for stream in self.layout.streams
        ]


@dataclass(frozen=True)
class FrameHeader:
    sequence: int
    session: str
    published_wall: float


class FrameEncoder:
    """Encodes frames of one publisher run; the stream descriptions are built once."""

    def __init__(self, spec: FrameSpec, session: str | None = None):
        self.spec = spec
        self.session = session or new_session_id()
        self._descriptions = spec.stream_descriptions()

    def encode(self, frame: Frame, published_wall: float | None = None) -> list[bytes]:
        streams = []
        offset = 0
        arrays = []
        for description in self._descriptions:
            modality = description["modality"]
            array = getattr(frame, modality)
            if array.shape != tuple(description["shape"]) or array.dtype != np.float32:
                raise ProtocolError(
                    f"frame {modality} has shape {array.shape} dtype {array.dtype}; "
                    f"the configured layout is {tuple(description['shape'])} float32"
                )
            first_index = frame.emg_first_index if modality == "emg" else frame.imu_first_index
            streams.append({**description, "first_index": int(first_index), "offset": offset})
            offset += array.nbytes
            arrays.append(array)
        header = {
            "v": SCHEMA_VERSION,
            "seq": int(frame.sequence),
            "session": self.session,
            "t_wall": time.time() if published_wall is None else float(published_wall),
            "streams": streams,
        }
        # astype to little-endian is a no-op copy on little-endian hosts; it makes the bytes exact.
        payload = b"".join(np.ascontiguousarray(array, dtype=WIRE_DTYPE).tobytes() for array in arrays)
        return [TOPIC_FRAME, _pack(header), payload]


class FrameDecoder:
    """Decodes and validates frame messages against one expected layout (built once: a frame is
    decoded every 13.5 ms, so the expected descriptions are not rebuilt per message)."""

    def __init__(self, spec: FrameSpec):
        self.spec = spec
        self.expected = {description["modality"]: description for description in spec.stream_descriptions()}
        self.rates = {modality: parse_rate(description["rate"]) for modality, description in self.expected.items()}

    def decode(self, parts: list) -> tuple[FrameHeader, Frame]:
        """NaN samples are allowed (a sensor that dropped out: data loss made visible); infinities are not."""
        _check_topic(parts, TOPIC_FRAME, 3)
        what = "frame header"
        header = _unpack(parts[1], what, MAX_HEADER_BYTES)
        _check_version(header, what)
        sequence = _int(header, "seq", what)
        session = _str(header, "session", what)
        published_wall = _float(header, "t_wall", what)
        streams = _field(header, "streams", what)
        if not isinstance(streams, list):
            raise ProtocolError(f"{what}: streams must be a list")
        payload = parts[2]
        payload_length = len(payload)
        expected = self.expected
        if len(streams) != len(expected):
            raise ProtocolError(f"{what}: {len(streams)} streams; the configured layout has {len(expected)} "
                                f"({self.spec.layout.describe()})")
        arrays: dict[str, np.ndarray] = {}
        first_indices: dict[str, int] = {}
        for stream in streams:
            if not isinstance(stream, dict):
                raise ProtocolError(f"{what}: each stream must be a map")
            modality = _str(stream, "modality", what)
            if modality not in expected or modality in arrays:
                raise ProtocolError(f"{what}: unexpected or repeated modality {modality!r}")
            description = expected[modality]
            where = f"{what} stream {modality}"
            if _str(stream, "dtype", where) != WIRE_DTYPE:
                raise ProtocolError(f"{where}: dtype {stream['dtype']!r}; expected {WIRE_DTYPE!r} (little-endian float32)")
            rate = _str(stream, "rate", where)
            if rate != description["rate"] and _rate(stream, "rate", where) != self.rates[modality]:
                raise ProtocolError(f"{where}: rate {rate} Hz; expected {description['rate']} Hz")
            shape = _field(stream, "shape", where)
            if shape != description["shape"]:
                raise ProtocolError(f"{where}: shape {shape!r}; expected {description['shape']}")
            if _field(stream, "channels", where) != description["channels"]:
                raise ProtocolError(f"{where}: channel names differ from the configured layout "
                                    f"({self.spec.layout.describe()}; sensors {', '.join(self.spec.sensor_names)})")
            offset = _int(stream, "offset", where)
            count = shape[0] * shape[1]
            if offset + 4 * count > payload_length:
                raise ProtocolError(f"{where}: bytes {offset}..{offset + 4 * count} are past the {payload_length}-byte payload")
            first_indices[modality] = _int(stream, "first_index", where)
            # astype: native byte order and writeable (frombuffer views are read-only).
            arrays[modality] = np.frombuffer(payload, dtype=WIRE_DTYPE, count=count, offset=offset).reshape(shape).astype(np.float32)
        described = sum(array.nbytes for array in arrays.values())
        if payload_length != described:
            raise ProtocolError(f"frame payload: {payload_length} bytes; the header describes {described}")
        imu_first = {first_indices[name] for name in ("acc", "gyro") if name in first_indices}
        if len(imu_first) > 1:
            raise ProtocolError(f"{what}: acc and gyro first_index differ ({first_indices['acc']} vs {first_indices['gyro']})")
        for modality, array in arrays.items():
            if np.isinf(array).any():
                raise ProtocolError(f"frame {modality}: infinite sample values (NaN marks a dropout; inf is never valid)")
        layout = self.spec.layout
        for modality in ("acc", "gyro"):
            if modality not in arrays:
                arrays[modality] = absent(layout.imu_samples_per_frame)
        frame = Frame(sequence=sequence, emg_first_index=first_indices["emg"], imu_first_index=min(imu_first, default=0),
                      emg=arrays["emg"], acc=arrays["acc"], gyro=arrays["gyro"])
        return FrameHeader(sequence, session, published_wall), frame


@functools.lru_cache(maxsize=8)
def _decoder(spec: FrameSpec) -> FrameDecoder:
    return FrameDecoder(spec)


def decode_frame(parts: list, spec: FrameSpec) -> tuple[FrameHeader, Frame]:
    """Decode and validate one frame message against the expected layout (see ``FrameDecoder``)."""
    return _decoder(spec).decode(parts)


# ---------------------------------------------------------------------------------------- maps

def _encode_map(topic: bytes, mapping: dict) -> list[bytes]:
    return [topic, _pack({"v": SCHEMA_VERSION, **mapping})]


def _decode_map(parts: list, topic: bytes) -> dict:
    _check_topic(parts, topic, 2)
    what = f"{topic.decode()} message"
    mapping = _unpack(parts[1], what, MAX_MAP_BYTES)
    _check_version(mapping, what)
    _int(mapping, "seq", what)
    _str(mapping, "session", what)
    _float(mapping, "t_wall", what)
    return mapping


def _check_span(mapping: dict, what: str) -> None:
    start = _int(mapping, "start_index", what)
    end = _int(mapping, "end_index", what)
    if end <= start:
        raise ProtocolError(f"{what}: end_index {end} must be > start_index {start}")
    _rate(mapping, "rate", what)
    for key in ("start_time_s", "end_time_s", "start_wall", "end_wall"):
        _float(mapping, key, what)
    # The acquisition run whose sample clock the span is on: spans of different runs never compare.
    _str(mapping, "source_session", what)


def _check_class(mapping: dict, what: str) -> None:
    _int(mapping, "class_index", what)
    _str(mapping, "label", what)
    _float(mapping, "confidence", what, 0.0, 1.0)
    _str(mapping, "model_id", what)
    timing = mapping.get("timing", {})
    if not isinstance(timing, dict) or not all(
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        for value in timing.values()
    ):
        raise ProtocolError(f"{what}: timing must be a map of finite numbers")


def encode_prediction(prediction: dict) -> list[bytes]:
    return _encode_map(TOPIC_PREDICTION, prediction)


def decode_prediction(parts: list) -> dict:
    what = "prediction message"
    mapping = _decode_map(parts, TOPIC_PREDICTION)
    _check_span(mapping, what)
    _check_class(mapping, what)
    probabilities = _field(mapping, "probabilities", what)
    if not isinstance(probabilities, list) or not probabilities:
        raise ProtocolError(f"{what}: probabilities must be a non-empty list of numbers")
    try:
        values = np.asarray(probabilities, dtype=np.float64)
    except (TypeError, ValueError):
        raise ProtocolError(f"{what}: probabilities must be a list of numbers") from None
    if values.ndim != 1 or not np.isfinite(values).all() or (values < 0).any() or (values > 1).any():
        raise ProtocolError(f"{what}: probabilities must be finite numbers in [0, 1]")
    if mapping["class_index"] >= len(probabilities):
        raise ProtocolError(f"{what}: class_index {mapping['class_index']} is past {len(probabilities)} classes")
    return mapping


def encode_event(event: dict) -> list[bytes]:
    return _encode_map(TOPIC_EVENT, event)


def decode_event(parts: list) -> dict:
    what = "event message"
    mapping = _decode_map(parts, TOPIC_EVENT)
    _check_span(mapping, what)
    _check_class(mapping, what)
    return mapping


def encode_status(status: dict) -> list[bytes]:
    return _encode_map(TOPIC_STATUS, status)


def decode_status(parts: list) -> dict:
    what = "status message"
    mapping = _decode_map(parts, TOPIC_STATUS)
    _str(mapping, "daemon", what)
    _str(mapping, "state", what)
    _int(mapping, "pid", what)
    _float(mapping, "uptime_s", what, 0.0)
    counters = _field(mapping, "counters", what)
    if not isinstance(counters, dict) or not all(
        isinstance(key, str) and isinstance(value, (int, float)) and not isinstance(value, bool)
        for key, value in counters.items()
    ):
        raise ProtocolError(f"{what}: counters must be a map of names to numbers")
    return mapping


def encode_truth(truth: dict) -> list[bytes]:
    return _encode_map(TOPIC_TRUTH, truth)


def decode_truth(parts: list) -> dict:
    what = "truth message"
    mapping = _decode_map(parts, TOPIC_TRUTH)
    _str(mapping, "label", what)
    start = _int(mapping, "start_index", what)
    if _int(mapping, "end_index", what) <= start:
        raise ProtocolError(f"{what}: end_index must be > start_index")
    _rate(mapping, "rate", what)
    _float(mapping, "start_time_s", what)
    _float(mapping, "end_time_s", what)
    return mapping


DECODERS = {
    TOPIC_PREDICTION: decode_prediction,
    TOPIC_EVENT: decode_event,
    TOPIC_STATUS: decode_status,
    TOPIC_TRUTH: decode_truth,
}


def decode_map_message(parts: list) -> tuple[bytes, dict]:
    """Decode any map message by its topic; returns (topic, mapping)."""
    if not isinstance(parts, (list, tuple)) or not parts:
        raise ProtocolError("empty message")
    topic = bytes(parts[0])
    decoder = DECODERS.get(topic)
    if decoder is None:
        raise ProtocolError(f"unknown topic {topic[:32]!r}; expected one of {[t.decode() for t in DECODERS]}")
    return topic, decoder(parts)


class SequenceTracker:
    """Follows one publisher's sequence numbers: counts missed messages and restarts.

    ``observe`` returns "first", "ok", "gap" (messages were lost: HWM drops or a network hiccup),
    "restart" (a new session id: the publisher was restarted) or "old" (a duplicate or reordered
    message, which ZeroMQ never produces on one connection; counted so that it is seen).
    """

    def __init__(self) -> None:
        self.session: str | None = None
        self.last_sequence: int | None = None
        self.missed = 0
        self.gaps = 0
        self.restarts = 0
        self.out_of_order = 0

    def observe(self, session: str, sequence: int) -> str:
        if self.session is None:
            self.session, self.last_sequence = session, sequence
            return "first"
        if session != self.session:
            self.session, self.last_sequence = session, sequence
            self.restarts += 1
            return "restart"
        expected = self.last_sequence + 1
        if sequence == expected:
            self.last_sequence = sequence
            return "ok"
        if sequence > expected:
            self.missed += sequence - expected
            self.gaps += 1
            self.last_sequence = sequence
            return "gap"
        self.out_of_order += 1
        return "old"
