"""The configuration schema: one frozen dataclass per TOML table.

Defaults here are the documented defaults; ``stream/default.toml`` spells every one of them out
(a test keeps the two equal). Range checks live in ``__post_init__`` and raise ConfigError with the
key, the value and what is allowed. Sections are frozen and built of tuples so they hash: the
preprocessing sections are hashed into every model card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

from stream.config.loader import ConfigError
from stream.wire.layout import PROFILES, TRIGNO_SENSORS, Layout
from stream.wire.rates import EMG_RATE_HZ, IMU_RATE_HZ


def _require(condition: bool, key: str, value: object, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"{key.rsplit('.', 1)[-1]} = {value!r}: must be {allowed}", key=key)


def _check_endpoint(key: str, value: str) -> None:
    _require(
        value.startswith(("tcp://", "ipc://", "inproc://")),
        key,
        value,
        "a ZeroMQ endpoint such as 'tcp://127.0.0.1:5555' or 'ipc:///run/signstream/frames'",
    )


SENSOR_NAMES = TRIGNO_SENSORS


@dataclass(frozen=True)
class SensorsConfig:
    """The sensor layout: which sensors the signer wears, what they send and at which exact rates.

    ``profile`` names a built-in layout (``stream.wire.layout.PROFILES``) whose values fill every key
    this table leaves out (``config_from_dict`` does that); the keys below are then the layout."""

    profile: str = "trigno"
    names: tuple[str, ...] = SENSOR_NAMES
    imu_names: tuple[str, ...] = ()  # IMU sensors when they are not the sEMG sensors (the Myo: one)
    emg_rate_hz: Fraction = EMG_RATE_HZ
    imu_rate_hz: Fraction = IMU_RATE_HZ
    modalities: tuple[Literal["emg", "acc", "gyro"], ...] = ("emg", "acc", "gyro")
    emg_unit: Literal["mV", "counts"] = "mV"

    def __post_init__(self) -> None:
        _require(self.profile in PROFILES, "sensors.profile", self.profile, f"one of {', '.join(PROFILES)}")
        _require(len(self.names) >= 1, "sensors.names", self.names, "a non-empty list of sensor names")
        _require(len(set(self.names)) == len(self.names), "sensors.names", self.names, "unique names")
        _require(len(set(self.imu_names)) == len(self.imu_names), "sensors.imu_names", self.imu_names, "unique names")
        _require(len(self.modalities) >= 1, "sensors.modalities", self.modalities, "a non-empty list")
        _require(len(set(self.modalities)) == len(self.modalities), "sensors.modalities", self.modalities, "unique")
        _require("emg" in self.modalities, "sensors.modalities", list(self.modalities),
                 "a list with 'emg' (every layout has sEMG: segmentation and the models need it)")
        for key, rate in (("sensors.emg_rate_hz", self.emg_rate_hz), ("sensors.imu_rate_hz", self.imu_rate_hz)):
            _require(rate > 0, key, str(rate), "a rate > 0 Hz")

    @property
    def layout(self) -> Layout:
        return Layout.from_sensors(self)


@dataclass(frozen=True)
class EndpointsConfig:
    """ZeroMQ endpoints. Publishers bind, subscribers connect. Loopback unless configured."""

    frames: str = "tcp://127.0.0.1:5555"
    predictions: str = "tcp://127.0.0.1:5556"
    events: str = "tcp://127.0.0.1:5557"
    send_high_water_mark: int = 1000
    receive_high_water_mark: int = 1000
    heartbeat_interval_s: float = 1.0
    max_message_bytes: int = 1_048_576

    def __post_init__(self) -> None:
        for name in ("frames", "predictions", "events"):
            _check_endpoint(f"endpoints.{name}", getattr(self, name))
        for name in ("send_high_water_mark", "receive_high_water_mark"):
            _require(getattr(self, name) >= 1, f"endpoints.{name}", getattr(self, name), ">= 1")
        _require(self.heartbeat_interval_s > 0, "endpoints.heartbeat_interval_s", self.heartbeat_interval_s, "> 0")
        _require(self.max_message_bytes >= 1024, "endpoints.max_message_bytes", self.max_message_bytes, ">= 1024")


@dataclass(frozen=True)
class SecurityConfig:
    """Optional CURVE encryption + authentication for links between hosts (keys from files)."""

    curve: bool = False
    server_secret_key_file: str = ""
    server_public_key_file: str = ""
    client_secret_key_file: str = ""
    client_public_key_file: str = ""
    authorized_clients_dir: str = ""

    def __post_init__(self) -> None:
        # Which key a host needs depends on what it runs: a publisher (stream-acquire, -infer, -sink)
        # the server secret key, a subscriber (stream-infer, -sink, -subscribe, -record) the server
        # public key. So a subscriber-only host holds no secret: each socket checks its key when made.
        if self.curve:
            _require(bool(self.server_secret_key_file or self.server_public_key_file), "security.server_public_key_file",
                     self.server_public_key_file, "a key file path when security.curve = true (and "
                     "server_secret_key_file on hosts that publish)")


@dataclass(frozen=True)
class FiltersConfig:
    """Filter design, done once at start-up with scipy.signal."""

    emg_bandpass_hz: tuple[float, float] = (20.0, 450.0)
    emg_bandpass_order: int = 4
    notch_hz: float = 50.0
    notch_quality: float = 30.0
    imu_lowpass_hz: float = 20.0
    imu_lowpass_order: int = 4
    initial_state: Literal["steady", "zeros"] = "steady"

    def __post_init__(self) -> None:
        # Edges against the Nyquist frequencies of the configured rates: Config.__post_init__.
        low, high = self.emg_bandpass_hz
        _require(0 < low < high, "filters.emg_bandpass_hz", list(self.emg_bandpass_hz), "[low, high] with 0 < low < high")
        _require(1 <= self.emg_bandpass_order <= 10, "filters.emg_bandpass_order", self.emg_bandpass_order, "1 to 10")
        _require(self.notch_hz >= 0, "filters.notch_hz", self.notch_hz, "0 (off), or a mains frequency such as 50 or 60")
        _require(self.notch_quality > 0, "filters.notch_quality", self.notch_quality, "> 0")
        _require(self.imu_lowpass_hz > 0, "filters.imu_lowpass_hz", self.imu_lowpass_hz, "> 0")
        _require(1 <= self.imu_lowpass_order <= 10, "filters.imu_lowpass_order", self.imu_lowpass_order, "1 to 10")

    def check_rates(self, sensors: SensorsConfig) -> None:
        """A filter that cannot exist at the configured rates is an error naming the key, the rate
        and what to use (e.g. a 20-450 Hz band-pass at 200 Hz)."""
        emg_nyquist = float(sensors.emg_rate_hz) / 2
        low, high = self.emg_bandpass_hz
        _require(high < emg_nyquist, "filters.emg_bandpass_hz", list(self.emg_bandpass_hz),
                 f"below the Nyquist frequency {emg_nyquist:g} Hz of sensors.emg_rate_hz = '{sensors.emg_rate_hz}' "
                 f"(e.g. [{min(low, 0.1 * emg_nyquist):g}, {0.95 * emg_nyquist:g}])")
        _require(self.notch_hz < emg_nyquist, "filters.notch_hz", self.notch_hz,
                 f"below the Nyquist frequency {emg_nyquist:g} Hz of sensors.emg_rate_hz = '{sensors.emg_rate_hz}', "
                 "or 0 (off)")
        if any(name in sensors.modalities for name in ("acc", "gyro")):
            imu_nyquist = float(sensors.imu_rate_hz) / 2
            _require(self.imu_lowpass_hz < imu_nyquist, "filters.imu_lowpass_hz", self.imu_lowpass_hz,
                     f"below the Nyquist frequency {imu_nyquist:g} Hz of sensors.imu_rate_hz = '{sensors.imu_rate_hz}' "
                     f"(e.g. {0.8 * imu_nyquist:g})")


@dataclass(frozen=True)
class PreprocessConfig:
    """Resampling to the model's input rate and fixed normalisation (constants, not data statistics,
    so the hash of this section alone says which preprocessing a model expects)."""

    model_rate_hz: Fraction = Fraction(2000, 27)
    emg_envelope: bool = True
    resample_half_length: int = 4
    resample_kaiser_beta: float = 5.0
    emg_scale: float = 20.0
    acc_scale: float = 1.0
    gyro_scale: float = 0.01
    max_gap_fill_s: float = 5.0

    def __post_init__(self) -> None:
        _require(self.resample_half_length >= 1, "preprocess.resample_half_length", self.resample_half_length, ">= 1")
        _require(0 <= self.max_gap_fill_s <= 3600, "preprocess.max_gap_fill_s", self.max_gap_fill_s,
                 "0 to 3600 seconds (longer gaps restart the filters instead of being filled)")
        _require(self.resample_kaiser_beta >= 0, "preprocess.resample_kaiser_beta", self.resample_kaiser_beta, ">= 0")
        for name in ("emg_scale", "acc_scale", "gyro_scale"):
            _require(getattr(self, name) > 0, f"preprocess.{name}", getattr(self, name), "> 0")
        _require(self.model_rate_hz > 0, "preprocess.model_rate_hz", str(self.model_rate_hz), "a rate > 0 Hz")


@dataclass(frozen=True)
class WindowConfig:
    """Aligned windows at the model rate. Lengths are rounded to whole model-rate samples."""

    length_s: float = 2.0
    hop_s: float = 0.0135
    gap_policy: Literal["drop", "flag"] = "drop"

    def __post_init__(self) -> None:
        _require(self.length_s > 0, "window.length_s", self.length_s, "> 0")
        _require(self.hop_s > 0, "window.hop_s", self.hop_s, "> 0")


@dataclass(frozen=True)
class SegmentationConfig:
    """Activity detection (sEMG energy and IMU motion) with hysteresis."""

    emg_on_threshold: float = 40.0
    emg_off_threshold: float = 10.0
    motion_on_threshold: float = 50.0
    motion_off_threshold: float = 8.0
    min_sign_s: float = 0.3
    max_sign_s: float = 1.9
    hold_off_s: float = 0.1
    baseline_time_constant_s: float = 10.0
    smoothing_s: float = 0.03
    emg_floor: float = 0.02
    motion_floor: float = 0.02
    warmup_s: float = 1.0
    release_fraction: float = 0.5
    local_floor_s: float = 2.0
    local_rise: float = 2.0
    baseline_update_ratio: float = 4.0
    average_earlier_s: tuple[float, ...] = ()
    # sEMG thresholds that follow the signer (stream.stages.segmenter): on = contrast ** on_exponent,
    # off = contrast ** off_exponent, where contrast is the signer's activity over rest (learned from
    # the peaks of the signs found, starting at initial_contrast), each between its min and the fixed
    # emg_on_threshold / emg_off_threshold above. false: the fixed thresholds alone.
    adaptive_thresholds: bool = True
    initial_contrast: float = 30.0
    on_exponent: float = 0.75
    off_exponent: float = 0.45
    emg_on_min: float = 4.0
    emg_off_min: float = 2.0
    contrast_learning: float = 0.2

    def __post_init__(self) -> None:
        _require(0 <= self.release_fraction < 1, "segmentation.release_fraction", self.release_fraction,
                 "in [0, 1) (0 turns the peak-relative release off)")
        _require(self.local_floor_s > 0, "segmentation.local_floor_s", self.local_floor_s, "> 0")
        _require(self.local_rise >= 1, "segmentation.local_rise", self.local_rise, ">= 1")
        _require(all(0 < value <= 1.0 for value in self.average_earlier_s), "segmentation.average_earlier_s",
                 list(self.average_earlier_s), "seconds in (0, 1]")
        _require(self.baseline_update_ratio > 1, "segmentation.baseline_update_ratio", self.baseline_update_ratio, "> 1")
        for name in ("smoothing_s", "warmup_s"):
            _require(getattr(self, name) >= 0, f"segmentation.{name}", getattr(self, name), ">= 0")
        for name in ("emg_floor", "motion_floor"):
            _require(getattr(self, name) > 0, f"segmentation.{name}", getattr(self, name), "> 0")
        _require(self.emg_off_threshold <= self.emg_on_threshold, "segmentation.emg_off_threshold",
                 self.emg_off_threshold, "<= emg_on_threshold (hysteresis)")
        _require(self.motion_off_threshold <= self.motion_on_threshold, "segmentation.motion_off_threshold",
                 self.motion_off_threshold, "<= motion_on_threshold (hysteresis)")
        _require(0 < self.min_sign_s < self.max_sign_s, "segmentation.min_sign_s", self.min_sign_s,
                 "> 0 and < max_sign_s")
        _require(self.hold_off_s >= 0, "segmentation.hold_off_s", self.hold_off_s, ">= 0")
        _require(self.baseline_time_constant_s > 0, "segmentation.baseline_time_constant_s",
                 self.baseline_time_constant_s, "> 0")
        _require(self.initial_contrast > 1, "segmentation.initial_contrast", self.initial_contrast,
                 "> 1 (activity over rest; real arm muscles 10-40, docs/DATA.md)")
        _require(0 < self.off_exponent <= self.on_exponent <= 1, "segmentation.on_exponent",
                 [self.off_exponent, self.on_exponent], "0 < off_exponent <= on_exponent <= 1")
        _require(1 < self.emg_off_min <= self.emg_on_min, "segmentation.emg_off_min", [self.emg_off_min, self.emg_on_min],
                 "1 < emg_off_min <= emg_on_min")
        _require(self.emg_on_min <= self.emg_on_threshold, "segmentation.emg_on_min", self.emg_on_min,
                 "<= emg_on_threshold (the adaptive on threshold lies between them)")
        _require(self.emg_off_min <= self.emg_off_threshold, "segmentation.emg_off_min", self.emg_off_min,
                 "<= emg_off_threshold")
        _require(0 <= self.contrast_learning <= 1, "segmentation.contrast_learning", self.contrast_learning,
                 "0 (keep initial_contrast) to 1 (the last sign's alone)")


@dataclass(frozen=True)
class ModelConfig:
    """The classifier. Relative paths are resolved against the config file's directory."""

    card: str = "../models/student/model_card.json"
    variant: Literal["float32", "dynamic_range", "int8"] = "dynamic_range"
    threads: int = 1

    def __post_init__(self) -> None:
        _require(bool(self.card), "model.card", self.card, "a path to a model_card.json")
        _require(1 <= self.threads <= 64, "model.threads", self.threads, "1 to 64")


@dataclass(frozen=True)
class SinkConfig:
    """Predictions -> sign events."""

    confidence_threshold: float = 0.4
    min_event_gap_s: float = 0.3
    jsonl_log: str = ""

    def __post_init__(self) -> None:
        _require(0 <= self.confidence_threshold <= 1, "sink.confidence_threshold", self.confidence_threshold, "0 to 1")
        _require(self.min_event_gap_s >= 0, "sink.min_event_gap_s", self.min_event_gap_s, ">= 0")


@dataclass(frozen=True)
class SyntheticSourceConfig:
    """The simulated signer (stream.synth): same seed and signer as a generated dataset = same person."""

    seed: int = 0
    signer: int = 0
    rest_s: tuple[float, float] = (1.0, 2.5)
    signs: tuple[str, ...] = ()
    fidget_probability: float = 0.3
    dropouts: bool = True
    # The signer model (stream.synth.signer.GENERATOR_VERSIONS; checked where the signer is made, since
    # config does not import the simulator): 5 = synth-v7's, 4 = synth-v6's.
    generator_version: int = 5

    def __post_init__(self) -> None:
        low, high = self.rest_s
        _require(0 <= low <= high, "acquire.synthetic.rest_s", list(self.rest_s), "[min, max] seconds with 0 <= min <= max")
        _require(high <= 60, "acquire.synthetic.rest_s", list(self.rest_s), "at most 60 s of rest")
        _require(self.seed >= 0, "acquire.synthetic.seed", self.seed, ">= 0")
        _require(self.signer >= 0, "acquire.synthetic.signer", self.signer, ">= 0 (signer 0 is a dataset's signer-01)")
        _require(len(set(self.signs)) == len(self.signs), "acquire.synthetic.signs", list(self.signs), "unique sign names")
        _require(0 <= self.fidget_probability <= 1, "acquire.synthetic.fidget_probability", self.fidget_probability,
                 "0 to 1")


@dataclass(frozen=True)
class ReplaySourceConfig:
    path: str = ""
    key: str = ""
    speed: float = 1.0
    loop: bool = False

    def __post_init__(self) -> None:
        _require(self.speed > 0, "acquire.replay.speed", self.speed, "> 0 (1.0 is real time)")
        _require("/" not in self.key, "acquire.replay.key", self.key, "a recording key without '/'")


@dataclass(frozen=True)
class TrignoSourceConfig:
    host: str = "127.0.0.1"
    command_port: int = 50040
    emg_port: int = 50043
    aux_port: int = 50044
    legacy_aux: bool = False
    slots: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    timeout_s: float = 5.0
    reconnect_backoff_s: tuple[float, float] = (0.5, 8.0)
    max_reconnect_attempts: int = 0
    backwards_compatibility: bool = True
    upsample: bool = False

    def __post_init__(self) -> None:
        _require(self.max_reconnect_attempts >= 0, "acquire.trigno.max_reconnect_attempts", self.max_reconnect_attempts,
                 ">= 0 (0 = keep trying)")
        for name in ("command_port", "emg_port", "aux_port"):
            _require(1 <= getattr(self, name) <= 65535, f"acquire.trigno.{name}", getattr(self, name), "a TCP port 1-65535")
        _require(all(1 <= slot <= 16 for slot in self.slots), "acquire.trigno.slots", list(self.slots), "slot numbers 1-16")
        _require(len(set(self.slots)) == len(self.slots), "acquire.trigno.slots", list(self.slots), "unique slot numbers")
        _require(self.timeout_s > 0, "acquire.trigno.timeout_s", self.timeout_s, "> 0")
        low, high = self.reconnect_backoff_s
        _require(0 < low <= high, "acquire.trigno.reconnect_backoff_s", list(self.reconnect_backoff_s),
                 "[first, max] seconds with 0 < first <= max")


@dataclass(frozen=True)
class LslSourceConfig:
    """[acquire.lsl]: the Lab Streaming Layer streams stream-acquire reads (docs/LSL.md). Each modality of
    the layout comes from one stream chosen by name and type (an empty one matches any)."""

    emg_name: str = "signstream-emg"
    emg_type: str = "EMG"
    acc_name: str = "signstream-acc"
    acc_type: str = "Accelerometer"
    gyro_name: str = "signstream-gyro"
    gyro_type: str = "Gyroscope"
    resolve_timeout_s: float = 5.0
    stall_timeout_s: float = 2.0
    max_stall_s: float = 0.0

    def __post_init__(self) -> None:
        for modality in ("emg", "acc", "gyro"):
            name, kind = getattr(self, f"{modality}_name"), getattr(self, f"{modality}_type")
            _require(bool(name or kind), f"acquire.lsl.{modality}_name", name,
                     f"a stream name, or {modality}_type set (a stream is chosen by name and/or type)")
            for key, value in ((f"{modality}_name", name), (f"{modality}_type", kind)):
                _require("'" not in value and len(value) <= 200, f"acquire.lsl.{key}", value,
                         "at most 200 characters without a single quote (LSL queries quote them)")
        _require(self.resolve_timeout_s > 0, "acquire.lsl.resolve_timeout_s", self.resolve_timeout_s, "> 0 seconds")
        _require(self.stall_timeout_s > 0, "acquire.lsl.stall_timeout_s", self.stall_timeout_s, "> 0 seconds")
        _require(self.max_stall_s == 0 or self.max_stall_s >= self.stall_timeout_s, "acquire.lsl.max_stall_s",
                 self.max_stall_s, "0 (keep waiting) or >= stall_timeout_s seconds")


@dataclass(frozen=True)
class AcquireConfig:
    source: Literal["synthetic", "replay", "trigno", "lsl"] = "synthetic"
    synthetic: SyntheticSourceConfig = field(default_factory=SyntheticSourceConfig)
    replay: ReplaySourceConfig = field(default_factory=ReplaySourceConfig)
    trigno: TrignoSourceConfig = field(default_factory=TrignoSourceConfig)
    lsl: LslSourceConfig = field(default_factory=LslSourceConfig)

    def __post_init__(self) -> None:
        if self.source == "replay":
            _require(bool(self.replay.path), "acquire.replay.path", self.replay.path,
                     "a recording path when acquire.source = 'replay'")


@dataclass(frozen=True)
class RecordConfig:
    out_dir: str = "recordings"
    flush_interval_frames: int = 74
    max_fill_s: float = 60.0

    def __post_init__(self) -> None:
        _require(bool(self.out_dir), "record.out_dir", self.out_dir, "a directory path")
        _require(1 <= self.flush_interval_frames <= 7400, "record.flush_interval_frames", self.flush_interval_frames,
                 "1 to 7400 frames (74 frames = 1 s)")
        _require(self.max_fill_s >= 0, "record.max_fill_s", self.max_fill_s, ">= 0 seconds")


@dataclass(frozen=True)
class MonitorConfig:
    """stream-monitor, the live web page (docs/MONITOR.md). Beyond loopback the page needs a token."""

    host: str = "127.0.0.1"
    port: int = 8080
    history_s: float = 10.0
    updates_per_s: float = 25.0
    client_queue: int = 50
    max_clients: int = 8
    status_endpoint: str = "tcp://127.0.0.1:5559"

    def __post_init__(self) -> None:
        _check_endpoint("monitor.status_endpoint", self.status_endpoint)
        _require(bool(self.host) and all(character.isalnum() or character in ".-:" for character in self.host),
                 "monitor.host", self.host, "an IP address or host name to bind, e.g. '127.0.0.1' (loopback) or "
                 "'0.0.0.0' (every interface: the page then needs the token printed at start)")
        _require(0 <= self.port <= 65535, "monitor.port", self.port, "a TCP port 1-65535, or 0 (any free port, printed)")
        _require(1 <= self.history_s <= 60, "monitor.history_s", self.history_s, "1 to 60 seconds")
        _require(1 <= self.updates_per_s <= 60, "monitor.updates_per_s", self.updates_per_s, "1 to 60 updates per second")
        _require(1 <= self.client_queue <= 10000, "monitor.client_queue", self.client_queue,
                 "1 to 10000 updates held for a slow browser before it is skipped ahead")
        _require(1 <= self.max_clients <= 64, "monitor.max_clients", self.max_clients, "1 to 64 browsers at once")


# What stream-speak may hand the synthesiser: letters and combining marks of any script (Devanagari's
# vowel signs and virama are marks; ZWJ/ZWNJ shape its conjuncts), digits, spaces and a little
# punctuation. Everything else is refused in the config and removed from labels: espeak-ng reads
# "[[...]]" as phonemes, a control character (\x01) as an embedded command, and "<...>" as SSML with -m.
SPEAKABLE_PUNCTUATION = " .,?!'-"
_SPEAKABLE_FORMAT = "\u200c\u200d"


def unspeakable_characters(text: str) -> str:
    """The characters of ``text`` that stream-speak never passes to the synthesiser (empty: all fine)."""
    import unicodedata

    return "".join(sorted({character for character in text if not (
        character in SPEAKABLE_PUNCTUATION or character in _SPEAKABLE_FORMAT
        or unicodedata.category(character)[0] in "LM" or unicodedata.category(character) == "Nd")}))


def _check_speakable(key: str, value: str) -> None:
    bad = unspeakable_characters(value)
    _require(bool(value.strip()) and not bad and len(value) <= 200, key, value,
             "1-200 characters of words: letters of any script, digits, spaces and . , ? ! ' -"
             + (f" (not {bad!r}: the synthesiser would read them as commands or markup)" if bad else ""))


@dataclass(frozen=True)
class SpeakConfig:
    """stream-speak: sign events spoken aloud with an offline synthesiser (docs/SPEECH.md)."""

    synthesizer: str = "espeak-ng"
    language: str = "en"
    voice: str = ""
    rate_wpm: int = 160
    pitch: int = 50
    min_confidence: float = 0.5
    low_confidence: Literal["skip", "cue"] = "cue"
    low_confidence_cue: str = "maybe"
    unknown_labels: Literal["speak", "skip"] = "speak"
    lexicon: tuple[tuple[str, str], ...] = (("thank_you", "thank you"),)
    max_queue: int = 8
    wav_dir: str = ""
    player: tuple[str, ...] = ("aplay", "-q")
    device_timeout_s: float = 2.0
    synthesis_timeout_s: float = 5.0
    status_endpoint: str = "tcp://127.0.0.1:5558"

    def __post_init__(self) -> None:
        import re

        name = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
        _require(bool(self.synthesizer.strip()), "speak.synthesizer", self.synthesizer,
                 "the espeak-ng program, a name on PATH or a path")
        _require(name.fullmatch(self.language) is not None, "speak.language", self.language,
                 "an espeak-ng language such as 'en', 'en-gb', 'en-us' or 'hi' (espeak-ng --voices lists them)")
        _require(self.voice == "" or name.fullmatch(self.voice) is not None, "speak.voice", self.voice,
                 "empty (the language's own voice) or an espeak-ng variant such as 'f3' or 'm1' "
                 "(espeak-ng --voices=variant lists them)")
        _require(80 <= self.rate_wpm <= 450, "speak.rate_wpm", self.rate_wpm, "80 to 450 words per minute")
        _require(0 <= self.pitch <= 99, "speak.pitch", self.pitch, "0 to 99")
        _require(0 <= self.min_confidence <= 1, "speak.min_confidence", self.min_confidence, "0 to 1")
        if self.low_confidence == "cue":
            _check_speakable("speak.low_confidence_cue", self.low_confidence_cue)
        labels = [label for label, _ in self.lexicon]
        _require(all(label for label in labels), "speak.lexicon", [list(pair) for pair in self.lexicon],
                 'a list of ["label", "words"] pairs with non-empty labels')
        _require(len(set(labels)) == len(labels), "speak.lexicon", sorted(labels),
                 "pairs with unique labels (each label once)")
        for index, (label, words) in enumerate(self.lexicon):
            _check_speakable(f"speak.lexicon[{index}]", words)
        _require(1 <= self.max_queue <= 256, "speak.max_queue", self.max_queue, "1 to 256 signs")
        _require(len(self.player) >= 1 and bool(self.player[0]), "speak.player", list(self.player),
                 'a command as a list, e.g. ["aplay", "-q"] (it reads a WAV on its standard input)')
        _require(self.device_timeout_s > 0, "speak.device_timeout_s", self.device_timeout_s, "> 0 seconds")
        _require(self.synthesis_timeout_s > 0, "speak.synthesis_timeout_s", self.synthesis_timeout_s, "> 0 seconds")
        _check_endpoint("speak.status_endpoint", self.status_endpoint)


@dataclass(frozen=True)
class LslConfig:
    """stream-lsl: our frames and sign events as Lab Streaming Layer outlets (docs/LSL.md)."""

    stream_prefix: str = "signstream"
    source_id: str = ""
    status_endpoint: str = "tcp://127.0.0.1:5560"

    def __post_init__(self) -> None:
        _require(bool(self.stream_prefix) and len(self.stream_prefix) <= 100 and "'" not in self.stream_prefix,
                 "lsl.stream_prefix", self.stream_prefix, "1-100 characters without a single quote")
        _require(len(self.source_id) <= 100 and "'" not in self.source_id, "lsl.source_id", self.source_id,
                 "empty (the prefix and host name) or at most 100 characters without a single quote")
        _check_endpoint("lsl.status_endpoint", self.status_endpoint)


@dataclass(frozen=True)
class LoggingConfig:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    status_interval_s: float = 5.0

    def __post_init__(self) -> None:
        _require(self.status_interval_s > 0, "logging.status_interval_s", self.status_interval_s, "> 0")


@dataclass(frozen=True)
class Config:
    """The whole configuration. ``source`` is where it was read from (for resolving paths)."""

    sensors: SensorsConfig = field(default_factory=SensorsConfig)
    endpoints: EndpointsConfig = field(default_factory=EndpointsConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    acquire: AcquireConfig = field(default_factory=AcquireConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    speak: SpeakConfig = field(default_factory=SpeakConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    lsl: LslConfig = field(default_factory=LslConfig)
    # Directory of the file this was read from; not a TOML key (the loader refuses it).
    base_dir: str = field(default=".", compare=False, metadata={"toml": False})

    def __post_init__(self) -> None:
        self.filters.check_rates(self.sensors)
        model_per_frame = self.preprocess.model_rate_hz * self.sensors.layout.frame_period_s
        _require(model_per_frame.denominator == 1, "preprocess.model_rate_hz", str(self.preprocess.model_rate_hz),
                 f"a whole number of samples per {float(self.sensors.layout.frame_period_s) * 1000:g} ms frame of the "
                 f"layout ({self.sensors.layout.describe()}), e.g. '{1 / self.sensors.layout.frame_period_s}'")
        _require(self.sensors.layout.frame_period_s <= Fraction(1, 10), "sensors.emg_rate_hz", str(self.sensors.emg_rate_hz),
                 f"a rate that shares a frame of at most 0.1 s with sensors.imu_rate_hz = '{self.sensors.imu_rate_hz}' "
                 f"(these give {float(self.sensors.layout.frame_period_s):g} s frames): write rates exactly, as 'p/q' "
                 "strings (1111.1 Hz is '10000/9'; Trigno rates are whole multiples of 1000/27 Hz)")

    @property
    def layout(self) -> Layout:
        return self.sensors.layout

    def resolve_path(self, value: str) -> Path:
        """A path from the config: absolute as is, relative to the config file's directory."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (Path(self.base_dir) / path).resolve()
