"""Base-station slots <-> our sensors, and wire units <-> pipeline units.

A data-port row holds all 16 slots; our six sensors sit in configured slots (``[acquire.trigno]
slots``, in ``[sensors] names`` order). EMG travels in volts and becomes millivolts; the
accelerometer travels in g and the gyroscope in deg/s, as the pipeline uses them.

Missing data is NaN, never zero: the legacy 48-value AUX layout carries no gyroscope (gyro is NaN),
a sensor whose AUX channels do not include a gyroscope gets NaN gyro, and a configured slot whose
whole frame is exactly zero on both ports (the base station's filler for a slot without data) is a
dropped-out sensor: NaN for all its channels in that frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.trigno.protocol import SLOT_COUNT, DataLayout

AXES = 3


def _slot_columns(slots: tuple[int, ...], stride: int, offset: int) -> np.ndarray:
    return np.array([stride * (slot - 1) + offset + axis for slot in slots for axis in range(AXES)], dtype=np.intp)


@dataclass(frozen=True)
class SlotMapping:
    """Column indices of our sensors in data-port rows, and the factors to our units."""

    slots: tuple[int, ...]
    layout: DataLayout
    emg_factors: np.ndarray  # (S,) float32: wire unit -> mV
    acc_factors: np.ndarray  # (3S,) float32: wire unit -> g
    gyro_factors: np.ndarray  # (3S,) float32: wire unit -> deg/s; NaN where a sensor has no gyroscope

    @classmethod
    def build(cls, slots, layout: DataLayout, emg_factors=None, acc_factors=None, gyro_factors=None) -> SlotMapping:
        slots = tuple(int(slot) for slot in slots)
        if not slots or any(not 1 <= slot <= SLOT_COUNT for slot in slots) or len(set(slots)) != len(slots):
            raise ValueError(f"slots {list(slots)} must be unique slot numbers 1-{SLOT_COUNT}")
        count = len(slots)

        def factors(values, length, default):
            array = np.full(length, default, np.float32) if values is None else np.asarray(values, np.float32)
            if array.shape != (length,):
                raise ValueError(f"expected {length} unit factors, got shape {array.shape}")
            return array

        gyro_default = 1.0 if layout.has_gyroscope else np.nan
        gyro = factors(gyro_factors, AXES * count, gyro_default)
        if not layout.has_gyroscope:
            gyro = np.full(AXES * count, np.nan, np.float32)
        return cls(slots, layout, factors(emg_factors, count, 1000.0), factors(acc_factors, AXES * count, 1.0), gyro)

    @property
    def emg_columns(self) -> np.ndarray:
        return np.array([slot - 1 for slot in self.slots], dtype=np.intp)

    @property
    def acc_columns(self) -> np.ndarray:
        return _slot_columns(self.slots, self.layout.aux_values_per_slot, 0)

    @property
    def gyro_columns(self) -> np.ndarray:
        # The legacy layout has no gyroscope: read the accelerometer columns and multiply by NaN.
        offset = AXES if self.layout.has_gyroscope else 0
        return _slot_columns(self.slots, self.layout.aux_values_per_slot, offset)


class RowDecoder:
    """Turns one frame's raw rows into (emg mV, acc g, gyro deg/s) for our sensors.

    Index arrays and factors are computed once; ``decode`` allocates only its three outputs.
    """

    def __init__(self, mapping: SlotMapping) -> None:
        self.mapping = mapping
        self._emg_columns = mapping.emg_columns
        self._acc_columns = mapping.acc_columns
        self._gyro_columns = mapping.gyro_columns
        self._slot_aux = np.array(
            [[mapping.layout.aux_values_per_slot * (slot - 1) + value for value in range(mapping.layout.aux_values_per_slot)]
             for slot in mapping.slots], dtype=np.intp)
        self.dropped_sensor_frames = 0

    def decode(self, emg_rows: np.ndarray, aux_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mapping = self.mapping
        emg = emg_rows[:, self._emg_columns] * mapping.emg_factors
        acc = aux_rows[:, self._acc_columns] * mapping.acc_factors
        gyro = aux_rows[:, self._gyro_columns] * mapping.gyro_factors
        emg_silent = ~emg.any(axis=0)  # EMG factors are finite and non-zero: zero in, zero out
        if emg_silent.any():
            self._blank_dropped(emg_silent, aux_rows, emg, acc, gyro)
        return emg, acc, gyro

    def _blank_dropped(self, emg_silent, aux_rows, emg, acc, gyro) -> None:
        for sensor in np.flatnonzero(emg_silent):
            if aux_rows[:, self._slot_aux[sensor]].any():
                continue
            self.dropped_sensor_frames += 1
            emg[:, sensor] = np.nan
            acc[:, AXES * sensor:AXES * sensor + AXES] = np.nan
            gyro[:, AXES * sensor:AXES * sensor + AXES] = np.nan


def encode_rows(emg_mv: np.ndarray, acc_g: np.ndarray, gyro_dps: np.ndarray, slots: tuple[int, ...],
                layout: DataLayout) -> tuple[np.ndarray, np.ndarray]:
    """Our sensors' frame -> the rows a base station sends (float32, volts / g / deg/s).

    Empty slots and the magnetometer values are zeros; NaN (a dropped sensor) is sent as zeros, as
    the base station fills a slot it has no data for. A modality the frame does not have (an array
    with no columns) is zeros too.
    """
    emg_rows = np.zeros((emg_mv.shape[0], layout.emg_row_values), np.float32)
    aux_rows = np.zeros((acc_g.shape[0], layout.aux_row_values), np.float32)
    stride = layout.aux_values_per_slot
    has_acc, has_gyro = acc_g.shape[1] > 0, gyro_dps.shape[1] > 0 and layout.has_gyroscope
    for sensor, slot in enumerate(slots):
        emg_rows[:, slot - 1] = emg_mv[:, sensor] / np.float32(1000.0)
        start = stride * (slot - 1)
        if has_acc:
            aux_rows[:, start:start + AXES] = acc_g[:, AXES * sensor:AXES * sensor + AXES]
        if has_gyro:
            aux_rows[:, start + AXES:start + 2 * AXES] = gyro_dps[:, AXES * sensor:AXES * sensor + AXES]
    np.nan_to_num(emg_rows, copy=False, nan=0.0)
    np.nan_to_num(aux_rows, copy=False, nan=0.0)
    return emg_rows, aux_rows
