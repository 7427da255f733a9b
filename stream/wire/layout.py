"""Sensor layouts as data: which streams a device sends, their channels, exact rates and units.

Every device we know has two clocks: one for sEMG and one for the inertial unit, whose modalities
(accelerometer, gyroscope) share it. A ``Layout`` names the sEMG sensors (one channel each), the IMU
sensors (three axes per modality each), which modalities are present and the two exact rates. Every
part of the pipeline takes shapes, rates and channel names from it instead of assuming Trigno's.

The frame period is the shortest period that holds a whole number of samples of both clocks:
``1 / gcd(emg_rate, imu_rate)`` (13.5 ms for Trigno, 20 ms for the Myo armband). The IMU rate counts
even when no IMU modality is sent, as the device still frames by it; for a device without an IMU
(1000 Hz sEMG alone) ``imu_rate_hz`` chooses the frame (50 gives 20 ms frames of 20 samples). Rates stay exact fractions, so sample ``n`` of a stream is at ``n / rate`` seconds exactly.

Built-in profiles (``[sensors] profile``) give the defaults of ``[sensors]`` (and, where the
rates need it, of ``[filters]`` and ``[preprocess]``); any key the config sets overrides them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

from stream.wire.rates import rate_to_string

MODALITIES = ("emg", "acc", "gyro")
IMU_MODALITIES = ("acc", "gyro")
AXES = ("x", "y", "z")
UNITS = {"emg": "mV", "acc": "g", "gyro": "deg/s"}

TRIGNO_SENSORS = (
    "flexor_carpi_radialis",
    "flexor_digitorum_superficialis",
    "extensor_digitorum",
    "extensor_carpi_ulnaris",
    "biceps_brachii",
    "triceps_brachii",
)


def _trigno(emg_rate: str, imu_rate: str, modalities=("emg", "acc", "gyro"), description: str = "") -> dict:
    return {"description": description,
            "sensors": {"names": list(TRIGNO_SENSORS), "imu_names": [], "emg_rate_hz": emg_rate,
                        "imu_rate_hz": imu_rate, "modalities": list(modalities), "emg_unit": "mV"}}


# name -> {"description", "sensors": [sensors] defaults, and other tables' defaults where needed}
PROFILES: dict[str, dict] = {
    "trigno": _trigno("10000/9", "4000/27", description="Delsys Trigno, six sensors, sEMG 1111.1 Hz + IMU 148.1 Hz (the default)"),
    "trigno-emg1259": _trigno("34000/27", "4000/27", description="Trigno sensor mode with sEMG 1259.3 Hz + IMU 148.1 Hz"),
    "trigno-emg1926": _trigno("52000/27", "2000/27", description="Trigno sensor mode with sEMG 1925.9 Hz + IMU 74.07 Hz"),
    "trigno-emg2148": _trigno("58000/27", "2000/27", description="Trigno sensor mode with sEMG 2148.1 Hz + IMU 74.07 Hz"),
    "trigno-emg-acc": _trigno("10000/9", "4000/27", ("emg", "acc"), "Trigno sensors sending sEMG + accelerometer only"),
    "trigno-emg": _trigno("10000/9", "4000/27", ("emg",), "Trigno sensors sending sEMG only"),
    "plux": {
        "description": "PLUX biosignalsplux / bioPLUX sEMG, one channel at 1000 Hz, no IMU (20 ms frames)",
        "sensors": {"names": ["emg"], "imu_names": [], "emg_rate_hz": "1000", "imu_rate_hz": "50",
                    "modalities": ["emg"], "emg_unit": "mV"},
        "preprocess": {"model_rate_hz": "50"},
        "window": {"hop_s": 0.02},
    },
    "myo": {
        "description": "Thalmic Myo armband: 8 sEMG pods at 200 Hz (signed 8-bit counts, filtered on board), one IMU at 50 Hz",
        "sensors": {"names": [f"pod{number}" for number in range(1, 9)], "imu_names": ["armband"],
                    "emg_rate_hz": "200", "imu_rate_hz": "50", "modalities": ["emg", "acc", "gyro"],
                    "emg_unit": "counts"},
        # 20-450 Hz cannot exist at 200 Hz; the armband already band-limits on board.
        "filters": {"emg_bandpass_hz": [10.0, 95.0], "imu_lowpass_hz": 20.0},
        # Counts (full scale 128) and the armband's small IMU swings to the model's units: measured on
        # lis-myo (docs/RESULTS.md), emg_scale 0.04 -> 0.2 lifted the sEMG teacher from 85 to 93 % on
        # test (3 seeds), acc_scale 1 -> 10 the accelerometer's from 65 to 77 %.
        "preprocess": {"model_rate_hz": "50", "emg_scale": 0.2, "acc_scale": 10.0, "gyro_scale": 0.03},
        "window": {"hop_s": 0.02},
    },
}


def profile_defaults(name: str) -> dict:
    """The tables a profile fills in (``{"sensors": {...}, ...}``); raises KeyError for unknown names."""
    return {table: dict(values) for table, values in PROFILES[name].items() if table != "description"}


def frame_period(rates: list[Fraction]) -> Fraction:
    """The shortest period holding a whole number of samples at every rate: 1 / gcd(rates)."""
    numerator = math.gcd(*(rate.numerator for rate in rates))
    denominator = math.lcm(*(rate.denominator for rate in rates))
    return Fraction(denominator, numerator)


@dataclass(frozen=True)
class Stream:
    """One stream of a layout, as the frame header and the recording format describe it."""

    modality: str
    channels: tuple[str, ...]
    rate_hz: Fraction
    unit: str
    samples_per_frame: int


@dataclass(frozen=True)
class Layout:
    sensor_names: tuple[str, ...]  # sEMG sensors, one channel each
    imu_names: tuple[str, ...]  # IMU sensors, three axes per modality each
    modalities: tuple[str, ...]  # in payload order, a subset of MODALITIES with "emg" first
    emg_rate_hz: Fraction
    imu_rate_hz: Fraction
    emg_unit: str = "mV"
    profile: str = ""

    def __post_init__(self) -> None:
        if "emg" not in self.modalities:
            raise ValueError(f"modalities {list(self.modalities)} have no 'emg': every layout has sEMG "
                             "(segmentation and every model need it)")
        unknown = [name for name in self.modalities if name not in MODALITIES]
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; known: {', '.join(MODALITIES)}")
        if self.has_imu and not self.imu_names:
            raise ValueError("an IMU modality is present but no IMU sensor is named")

    @classmethod
    def from_sensors(cls, sensors) -> Layout:
        """The layout ``[sensors]`` describes (a SensorsConfig)."""
        modalities = tuple(name for name in MODALITIES if name in sensors.modalities)
        return cls(tuple(sensors.names), tuple(sensors.imu_names or sensors.names), modalities,
                   Fraction(sensors.emg_rate_hz), Fraction(sensors.imu_rate_hz), sensors.emg_unit, sensors.profile)

    @property
    def has_imu(self) -> bool:
        return any(name in IMU_MODALITIES for name in self.modalities)

    # Derived values are cached (a frozen dataclass still has an instance dict): a source asks for
    # them every frame.
    @cached_property
    def frame_period_s(self) -> Fraction:
        # The IMU clock counts even when no IMU modality is sent: the device still frames by it
        # (Trigno sensors sending sEMG only still deliver 13.5 ms frames).
        return frame_period([self.emg_rate_hz, self.imu_rate_hz])

    @cached_property
    def emg_samples_per_frame(self) -> int:
        return int(self.emg_rate_hz * self.frame_period_s)

    @cached_property
    def imu_samples_per_frame(self) -> int:
        """IMU samples per frame; 0 when no IMU modality is present (the IMU clock is unused)."""
        return int(self.imu_rate_hz * self.frame_period_s) if self.has_imu else 0

    def channel_count(self, modality: str) -> int:
        """Columns of ``modality``: 0 when it is not present."""
        if modality not in self.modalities:
            return 0
        return len(self.sensor_names) if modality == "emg" else len(AXES) * len(self.imu_names)

    def channels(self, modality: str) -> tuple[str, ...]:
        """Channel names in column order, e.g. 'biceps_brachii.emg', 'biceps_brachii.acc.x'."""
        if modality not in self.modalities:
            return ()
        if modality == "emg":
            return tuple(f"{sensor}.emg" for sensor in self.sensor_names)
        return tuple(f"{sensor}.{modality}.{axis}" for sensor in self.imu_names for axis in AXES)

    def rate(self, modality: str) -> Fraction:
        return self.emg_rate_hz if modality == "emg" else self.imu_rate_hz

    def samples_per_frame(self, modality: str) -> int:
        return self.emg_samples_per_frame if modality == "emg" else self.imu_samples_per_frame

    @property
    def streams(self) -> tuple[Stream, ...]:
        return tuple(Stream(name, self.channels(name), self.rate(name), self.emg_unit if name == "emg" else UNITS[name],
                            self.samples_per_frame(name)) for name in self.modalities)

    def describe(self) -> str:
        """One line for people: 'trigno: emg 6 x 10000/9 Hz (mV), acc 18 x 4000/27 Hz (g), ...'."""
        streams = ", ".join(f"{stream.modality} {len(stream.channels)} x {rate_to_string(stream.rate_hz)} Hz ({stream.unit})"
                            for stream in self.streams)
        return f"{self.profile or 'custom'}: {streams}"

    def signature(self) -> dict:
        """What a model card records and compares (names, channel counts, rates, modalities)."""
        return {"modalities": list(self.modalities), "sensor_names": list(self.sensor_names),
                "imu_names": list(self.imu_names) if self.has_imu else [],
                "emg_rate_hz": rate_to_string(self.emg_rate_hz),
                "imu_rate_hz": rate_to_string(self.imu_rate_hz) if self.has_imu else None,
                "emg_unit": self.emg_unit}
