"""The in-memory recording: raw samples at native rates, sample indices, labels and gaps.

Indices are absolute on the recording's own sample clock (counted from the acquisition's START):
sEMG row ``r`` holds sample ``emg_first_index + r`` and annotations/gaps use the same numbering, so
a recording cut out of a longer stream keeps its times. Nothing here touches files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from stream.wire.frames import Frame, absent
from stream.wire.layout import IMU_MODALITIES, Layout
from stream.wire.rates import parse_rate

ALL_SENSORS = -1  # Gap.sensor value for a gap in every channel (lost frames)
EMG_UNITS = ("mV", "counts")
DURATION_TOLERANCE_S = 0.25  # sEMG and IMU spans must agree this closely (catches mislabelled rates)


class RecordingError(ValueError):
    """A recording or recording file that is not what the format promises. The message names the
    file (when there is one) and the problem."""


@dataclass(frozen=True)
class Annotation:
    """One labelled span in sEMG sample indices, ``end_index`` exclusive."""

    label: str
    start_index: int
    end_index: int


@dataclass(frozen=True)
class Gap:
    """Samples that are missing (NaN in the arrays): one sensor's channels, or all of them
    (``sensor == ALL_SENSORS``), over sEMG ``[emg_start, emg_end)`` and IMU ``[imu_start, imu_end)``."""

    sensor: int
    emg_start: int
    emg_end: int
    imu_start: int
    imu_end: int


@dataclass
class Recording:
    """sEMG ``(N, S)`` in mV (or counts, ``emg_unit``); accelerometer ``(M, 3I)`` in g and gyroscope
    ``(M, 3I)`` in deg/s, columns sensor-major (s1x, s1y, s1z, s2x, ...); all float32, NaN where
    samples are missing. The IMU sensors are the sEMG sensors unless ``imu_names`` names others (the
    Myo armband: 8 sEMG pods, one IMU). A modality the device does not send has no columns, ``(M, 0)``
    (its rows follow the other IMU modality's, or 0 when there is no IMU). ``layout`` says which."""

    emg: np.ndarray
    acc: np.ndarray
    gyro: np.ndarray
    emg_rate_hz: Fraction
    imu_rate_hz: Fraction
    sensor_names: tuple[str, ...]
    emg_first_index: int = 0
    imu_first_index: int = 0
    annotations: list[Annotation] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    complete: bool = True  # False for a file whose writer never closed it (crash, power loss)
    imu_names: tuple[str, ...] = ()  # empty: the IMU sensors are the sEMG sensors
    emg_unit: str = "mV"

    @property
    def layout(self) -> Layout:
        modalities = ("emg",) + tuple(name for name in IMU_MODALITIES if getattr(self, name).shape[1] > 0)
        return Layout(tuple(self.sensor_names), tuple(self.imu_names or self.sensor_names), modalities,
                      Fraction(self.emg_rate_hz), Fraction(self.imu_rate_hz), self.emg_unit)

    @property
    def imu_rows(self) -> int:
        """IMU samples (0 when no IMU modality is present)."""
        return max(self.acc.shape[0] if self.acc.shape[1] else 0, self.gyro.shape[0] if self.gyro.shape[1] else 0)

    @property
    def whole_frames(self) -> int:
        """Frames of the layout that the samples fill completely on every clock present."""
        layout = self.layout
        frames = self.emg.shape[0] // layout.emg_samples_per_frame
        if layout.has_imu:
            frames = min(frames, self.imu_rows // layout.imu_samples_per_frame)
        return frames

    def frame(self, row: int, sequence: int | None = None, layout: Layout | None = None) -> Frame:
        """Frame ``row`` counted from this recording's first sample (a copy), numbered ``sequence``
        (default ``row``); the replay source and offline streaming cut frames with it. ``layout``: this
        recording's, when the caller cuts many frames (it is not rebuilt for each)."""
        layout = layout or self.layout
        emg_rows, imu_rows = layout.emg_samples_per_frame, layout.imu_samples_per_frame
        imu = slice(row * imu_rows, (row + 1) * imu_rows)
        return Frame(row if sequence is None else sequence, self.emg_first_index + row * emg_rows,
                     self.imu_first_index + row * imu_rows,
                     np.ascontiguousarray(self.emg[row * emg_rows:(row + 1) * emg_rows]),
                     *(np.ascontiguousarray(getattr(self, name)[imu]) if name in layout.modalities else absent(imu_rows)
                       for name in IMU_MODALITIES))

    @property
    def duration_s(self) -> float:
        return self.emg.shape[0] / float(self.emg_rate_hz)

    @property
    def emg_end_index(self) -> int:
        return self.emg_first_index + self.emg.shape[0]

    def cut(self, emg_start_index: int, emg_stop_index: int) -> Recording:
        """The part of this recording covering sEMG samples ``[emg_start_index, emg_stop_index)``,
        widened to whole frames of its layout counted from the recording's first row (so sEMG and IMU
        stay aligned as the live stream delivers them) and clipped to the recording. Keeps the
        annotations that lie wholly inside it and the parts of gaps that fall in it; indices stay
        absolute."""
        layout = self.layout
        emg_per_frame, imu_per_frame = layout.emg_samples_per_frame, layout.imu_samples_per_frame
        frames = self.whole_frames
        first = min(frames, max(0, (emg_start_index - self.emg_first_index) // emg_per_frame))
        last = max(first, min(frames, -(-(emg_stop_index - self.emg_first_index) // emg_per_frame)))
        emg_rows = slice(first * emg_per_frame, last * emg_per_frame)
        imu_rows = slice(first * imu_per_frame, last * imu_per_frame)
        emg_first, imu_first = self.emg_first_index + emg_rows.start, self.imu_first_index + imu_rows.start
        emg_end, imu_end = self.emg_first_index + emg_rows.stop, self.imu_first_index + imu_rows.stop
        gaps = []
        for gap in self.gaps:
            emg_start, imu_start = max(gap.emg_start, emg_first), max(gap.imu_start, imu_first)
            clipped = Gap(gap.sensor, emg_start, max(emg_start, min(gap.emg_end, emg_end)), imu_start,
                          max(imu_start, min(gap.imu_end, imu_end)))
            if clipped.emg_start < clipped.emg_end or clipped.imu_start < clipped.imu_end:
                gaps.append(clipped)
        return Recording(self.emg[emg_rows], self.acc[imu_rows], self.gyro[imu_rows], self.emg_rate_hz, self.imu_rate_hz,
                         self.sensor_names, emg_first, imu_first,
                         [annotation for annotation in self.annotations
                          if emg_first <= annotation.start_index and annotation.end_index <= emg_end],
                         dict(self.metadata), gaps, self.complete, self.imu_names, self.emg_unit)

    def validate(self, where: str = "recording") -> None:
        """Raise RecordingError naming ``where`` and the problem if anything breaks the format."""

        def fail(problem: str) -> None:
            raise RecordingError(f"{where}: {problem}")

        try:
            self.emg_rate_hz = parse_rate(self.emg_rate_hz)
            self.imu_rate_hz = parse_rate(self.imu_rate_hz)
        except ValueError as error:
            fail(str(error))
        self.sensor_names = tuple(self.sensor_names)
        sensors = len(self.sensor_names)
        if sensors == 0:
            fail("no sensor names")
        if len(set(self.sensor_names)) != sensors:
            fail(f"sensor names are not unique: {list(self.sensor_names)}")
        self.imu_names = tuple(self.imu_names)
        imu_sensors = len(self.imu_names or self.sensor_names)
        if len(set(self.imu_names)) != len(self.imu_names):
            fail(f"IMU sensor names are not unique: {list(self.imu_names)}")
        if self.emg_unit not in EMG_UNITS:
            fail(f"emg_unit {self.emg_unit!r} is not one of {', '.join(EMG_UNITS)}")
        expected = {"emg": (sensors,), "acc": (3 * imu_sensors, 0), "gyro": (3 * imu_sensors, 0)}
        for name, columns in expected.items():
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.dtype != np.float32:
                fail(f"{name} must be a float32 numpy array, got {getattr(array, 'dtype', type(array).__name__)}")
            if array.ndim != 2 or array.shape[1] not in columns:
                fail(f"{name} has shape {array.shape}; with {sensors if name == 'emg' else imu_sensors} "
                     f"{'sEMG' if name == 'emg' else 'IMU'} sensors it must be (samples, {columns[0]})"
                     + (" or (samples, 0) when the device does not send it" if name != "emg" else "")
                     + " (missing channels?)")
        if self.acc.shape[1] and self.gyro.shape[1] and self.acc.shape[0] != self.gyro.shape[0]:
            fail(f"acc has {self.acc.shape[0]} samples but gyro has {self.gyro.shape[0]}; they share one clock")
        emg_span = self.emg.shape[0] / float(self.emg_rate_hz)
        imu_span = self.imu_rows / float(self.imu_rate_hz)
        if self.imu_rows and self.emg.shape[0] and abs(emg_span - imu_span) > DURATION_TOLERANCE_S:
            fail(f"sEMG spans {emg_span:.3f} s at {self.emg_rate_hz} Hz but IMU spans {imu_span:.3f} s at "
                 f"{self.imu_rate_hz} Hz: the rates do not match the sample counts")
        for name in ("emg_first_index", "imu_first_index"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                fail(f"{name} = {value!r} must be an integer >= 0")
        for annotation in self.annotations:
            if not isinstance(annotation.label, str) or not annotation.label:
                fail(f"annotation {annotation} has an empty label")
            if not self.emg_first_index <= annotation.start_index < annotation.end_index <= self.emg_end_index:
                fail(f"annotation {annotation} is outside the sEMG samples "
                     f"[{self.emg_first_index}, {self.emg_end_index}) or empty")
        for gap in self.gaps:
            if not (gap.sensor == ALL_SENSORS or 0 <= gap.sensor < sensors):
                fail(f"gap {gap} names sensor {gap.sensor}; must be -1 (all) or 0..{sensors - 1}")
            if gap.emg_start > gap.emg_end or gap.imu_start > gap.imu_end:
                fail(f"gap {gap} has an end before its start")
        if not isinstance(self.metadata, dict):
            fail(f"metadata must be a dict, got {type(self.metadata).__name__}")
