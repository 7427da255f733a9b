"""The wire format between the daemons and any subscriber (specified for people in docs/protocol.md).

Every message is a ZeroMQ multipart message whose first part is the topic:

- ``description``: [b"description", msgpack map] what the frames of this publisher hold (streams,
  rates, shapes, channel names, payload offsets), sent before the first frame and with every
  heartbeat; its ``id`` is in every frame header;
- ``frame``:      [b"frame", msgpack header, raw little-endian payload] one 13.5 ms sensor frame;
  the header is a few integers and the description's id;
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
import hashlib
import json
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

# 2: frames carry the id of a stream description (its own message) instead of describing their
# streams in every header (version 1).
SCHEMA_VERSION = 2

TOPIC_DESCRIPTION = b"description"
TOPIC_FRAME = b"frame"
TOPIC_PREDICTION = b"prediction"
TOPIC_EVENT = b"event"
TOPIC_STATUS = b"status"
TOPIC_TRUTH = b"truth"
TOPICS = (TOPIC_DESCRIPTION, TOPIC_FRAME, TOPIC_PREDICTION, TOPIC_EVENT, TOPIC_STATUS, TOPIC_TRUTH)

WIRE_DTYPE = "<f4"
MAX_HEADER_BYTES = 4 * 1024  # a frame header is about 110 bytes
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
        """Each stream of a frame, in payload order (the layout's modalities), with its byte offset."""
        streams, offset = [], 0
        for stream in self.layout.streams:
            shape = [stream.samples_per_frame, len(stream.channels)]
            streams.append({"modality": stream.modality, "rate": rate_to_string(stream.rate_hz), "dtype": WIRE_DTYPE,
                            "shape": shape, "channels": list(stream.channels), "offset": offset})
            offset += 4 * shape[0] * shape[1]
        return streams

    @functools.cached_property
    def description(self) -> dict:
        """The stream description message's fields (besides v/seq/session/t_wall): ``id``, ``layout``,
        ``payload_bytes`` and ``streams``. Built once per spec."""
        streams = self.stream_descriptions()
        return {"id": description_id(streams), "layout": self.layout.describe(),
                "payload_bytes": sum(4 * stream["shape"][0] * stream["shape"][1] for stream in streams),
                "streams": streams}

    @property
    def description_id(self) -> str:
        return self.description["id"]


def description_id(streams: list[dict]) -> str:
    """The id of a list of stream descriptions: 16 hex digits of the sha256 of its canonical JSON
    (keys sorted, no spaces), so equal descriptions have equal ids in any language."""
    canonical = json.dumps(streams, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]


@dataclass(frozen=True)
class FrameHeader:
    sequence: int
    session: str
    published_wall: float
    dropout: bool = False  # some sample is NaN (a sensor dropped out)


class FrameEncoder:
    """Encodes the frames and the stream description of one publisher run."""

    def __init__(self, spec: FrameSpec, session: str | None = None):
        self.spec = spec
        self.session = session or new_session_id()
        self._description = spec.description
        self._shapes = [(stream["modality"], tuple(stream["shape"])) for stream in self._description["streams"]]
        self._has_imu = len(self._shapes) > 1
        self._description_sequence = 0

    def encode_description(self, published_wall: float | None = None) -> list[bytes]:
        """The ``description`` message: sent before the first frame and again with every heartbeat,
        so a subscriber that connects late learns what the frames hold within one interval."""
        message = _encode_map(TOPIC_DESCRIPTION, {
            "seq": self._description_sequence, "session": self.session,
            "t_wall": time.time() if published_wall is None else float(published_wall), **self._description})
        self._description_sequence += 1
        return message

    def encode(self, frame: Frame, published_wall: float | None = None) -> list[bytes]:
        arrays = []
        for modality, shape in self._shapes:
            array = getattr(frame, modality)
            if array.shape != shape or array.dtype != np.float32:
                raise ProtocolError(f"frame {modality} has shape {array.shape} dtype {array.dtype}; "
                                    f"the configured layout is {shape} float32")
            arrays.append(array)
        header = {
            "v": SCHEMA_VERSION,
            "seq": int(frame.sequence),
            "session": self.session,
            "t_wall": time.time() if published_wall is None else float(published_wall),
            "description": self._description["id"],
            "emg_first_index": int(frame.emg_first_index),
            "imu_first_index": int(frame.imu_first_index) if self._has_imu else 0,  # no IMU stream: no IMU clock
        }
        # astype to little-endian is a no-op copy on little-endian hosts; it makes the bytes exact.
        payload = b"".join(np.ascontiguousarray(array, dtype=WIRE_DTYPE).tobytes() for array in arrays)
        return [TOPIC_FRAME, _pack(header), payload]


class FrameDecoder:
    """Decodes and validates frame messages against one expected layout.

    The layout is checked once, as a whole: a frame names its stream description by id, and the id
    of the configured layout's description is computed here from the config. A frame of another
    description is refused; with the publisher's ``description`` message given to
    ``observe_description``, the refusal says how the two differ (rate, shape, channel names).
    """

    def __init__(self, spec: FrameSpec):
        self.spec = spec
        description = spec.description
        self.description_id = description["id"]
        self.payload_bytes = description["payload_bytes"]
        self.expected = {stream["modality"]: stream for stream in description["streams"]}
        self._slices = [(stream["modality"], stream["offset"] // 4,
                         stream["offset"] // 4 + stream["shape"][0] * stream["shape"][1], tuple(stream["shape"]))
                        for stream in description["streams"]]
        self._absent = {name: absent(spec.layout.imu_samples_per_frame) for name in ("acc", "gyro")
                        if name not in self.expected}
        self.seen_descriptions: dict[str, dict] = {}  # id -> a publisher's description (a few at most)

    def observe_description(self, description: dict) -> None:
        """Remember a (decoded) publisher description, to explain refusals of its frames."""
        if len(self.seen_descriptions) >= 16:
            self.seen_descriptions.pop(next(iter(self.seen_descriptions)))
        self.seen_descriptions[description["id"]] = description

    def mismatch(self, description: dict) -> str | None:
        """How a publisher's description differs from the configured layout (None: it does not)."""
        if description["id"] == self.description_id:
            return None
        layout = f"the configured layout is {self.spec.layout.describe()}"
        streams = description["streams"]
        modalities = [stream["modality"] for stream in streams]
        if modalities != list(self.expected):
            return f"the frames hold streams {modalities}; {layout}"
        for stream in streams:
            where, expected = f"stream {stream['modality']}", self.expected[stream["modality"]]
            if stream["rate"] != expected["rate"] and parse_rate(stream["rate"]) != parse_rate(expected["rate"]):
                return f"{where}: rate {stream['rate']} Hz; expected {expected['rate']} Hz ({layout})"
            if stream["dtype"] != expected["dtype"]:
                return f"{where}: dtype {stream['dtype']!r}; expected {WIRE_DTYPE!r} (little-endian float32)"
            if stream["shape"] != expected["shape"]:
                return f"{where}: shape {stream['shape']}; expected {expected['shape']} ({layout})"
            if stream["channels"] != expected["channels"]:
                return (f"{where}: channel names differ from the configured layout "
                        f"({self.spec.layout.describe()}; sensors {', '.join(self.spec.sensor_names)})")
            if stream["offset"] != expected["offset"]:
                return f"{where}: offset {stream['offset']}; expected {expected['offset']}"
        return f"the description differs from the configured layout's ({layout})"

    def _refuse_description(self, identifier: str) -> ProtocolError:
        known = self.seen_descriptions.get(identifier)
        if known is not None:
            return ProtocolError(f"frame: {self.mismatch(known)}")
        return ProtocolError(
            f"frame header: stream description {identifier!r} is not the configured layout's "
            f"({self.description_id}: {self.spec.layout.describe()}); the publisher's 'description' message, "
            "sent with every heartbeat, says what its frames hold")

    def decode(self, parts: list) -> tuple[FrameHeader, Frame]:
        """NaN samples are allowed (a sensor that dropped out: data loss made visible); infinities are not."""
        _check_topic(parts, TOPIC_FRAME, 3)
        what = "frame header"
        header = _unpack(parts[1], what, MAX_HEADER_BYTES)
        _check_version(header, what)
        sequence = _int(header, "seq", what)
        session = _str(header, "session", what)
        published_wall = _float(header, "t_wall", what)
        identifier = _str(header, "description", what)
        emg_first = _int(header, "emg_first_index", what)
        imu_first = _int(header, "imu_first_index", what)
        if identifier != self.description_id:
            raise self._refuse_description(identifier)
        payload = parts[2]
        if len(payload) != self.payload_bytes:
            raise ProtocolError(f"frame payload: {len(payload)} bytes; the description says {self.payload_bytes}")
        # One copy of the whole payload (native byte order, writeable); each stream is a view of it.
        values = np.frombuffer(payload, dtype=WIRE_DTYPE).astype(np.float32)
        dropout = False
        if not np.isfinite(values).all():
            for modality, low, high, _ in self._slices:
                if np.isinf(values[low:high]).any():
                    raise ProtocolError(f"frame {modality}: infinite sample values (NaN marks a dropout; inf is never valid)")
            dropout = True
        arrays = {modality: values[low:high].reshape(shape) for modality, low, high, shape in self._slices}
        arrays.update(self._absent)
        frame = Frame(sequence, emg_first, imu_first if len(self.expected) > 1 else 0,
                      arrays["emg"], arrays["acc"], arrays["gyro"])
        return FrameHeader(sequence, session, published_wall, dropout), frame


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


def decode_description(parts: list) -> dict:
    """A publisher's stream description, checked to be self-consistent (offsets, payload size, id)."""
    what = "description message"
    mapping = _decode_map(parts, TOPIC_DESCRIPTION)
    identifier = _str(mapping, "id", what)
    _str(mapping, "layout", what)
    payload_bytes = _int(mapping, "payload_bytes", what)
    streams = _field(mapping, "streams", what)
    if not isinstance(streams, list) or not streams:
        raise ProtocolError(f"{what}: streams must be a non-empty list of maps")
    offset = 0
    for stream in streams:
        if not isinstance(stream, dict):
            raise ProtocolError(f"{what}: each stream must be a map")
        modality = _str(stream, "modality", what)
        where = f"{what} stream {modality}"
        _rate(stream, "rate", where)
        if _str(stream, "dtype", where) != WIRE_DTYPE:
            raise ProtocolError(f"{where}: dtype {stream['dtype']!r}; expected {WIRE_DTYPE!r} (little-endian float32)")
        shape = _field(stream, "shape", where)
        if not (isinstance(shape, list) and len(shape) == 2
                and all(isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape)):
            raise ProtocolError(f"{where}: shape {shape!r} must be [samples, channels]")
        channels = _field(stream, "channels", where)
        if not (isinstance(channels, list) and len(channels) == shape[1] and all(isinstance(name, str) for name in channels)):
            raise ProtocolError(f"{where}: channels must be {shape[1]} names (one per column)")
        if _int(stream, "offset", where) != offset:
            raise ProtocolError(f"{where}: offset {stream['offset']}; the streams before it end at byte {offset}")
        offset += 4 * shape[0] * shape[1]
    if payload_bytes != offset:
        raise ProtocolError(f"{what}: payload_bytes {payload_bytes}; the streams hold {offset}")
    if description_id(streams) != identifier:
        raise ProtocolError(f"{what}: id {identifier!r} is not the id of its streams ({description_id(streams)})")
    return mapping


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
    TOPIC_DESCRIPTION: decode_description,
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
