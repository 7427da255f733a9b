"""The raw 13.5 ms frame every source produces and every consumer of raw data reads.

Channel layout (also on the wire, see docs/protocol.md):
- ``emg``:  (15, S) float32, millivolts, one column per sensor in ``[sensors] names`` order.
- ``acc``:  (2, 3*S) float32, g; columns sensor-major: s1x, s1y, s1z, s2x, ...
- ``gyro``: (2, 3*S) float32, deg/s; same column order as ``acc``.

Time is sample counting, never wall clocks: ``emg_first_index`` and ``imu_first_index`` are the
indices since START of the first sample in this frame (frame ``k`` normally starts at 15k and 2k).
A sensor that dropped out sends NaN for its channels: NaN is data-loss made visible, not a value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.wire.rates import EMG_SAMPLES_PER_FRAME, IMU_SAMPLES_PER_FRAME

MODALITIES = ("emg", "acc", "gyro")
AXES = ("x", "y", "z")


def channel_names(modality: str, sensor_names: tuple[str, ...]) -> tuple[str, ...]:
    """Channel names of one modality in column order, e.g. 'biceps_brachii.acc.x'."""
    if modality == "emg":
        return tuple(f"{sensor}.emg" for sensor in sensor_names)
    if modality in ("acc", "gyro"):
        return tuple(f"{sensor}.{modality}.{axis}" for sensor in sensor_names for axis in AXES)
    raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")


@dataclass
class Frame:
    """One 13.5 ms frame of all modalities."""

    sequence: int
    emg_first_index: int
    imu_first_index: int
    emg: np.ndarray
    acc: np.ndarray
    gyro: np.ndarray

    @property
    def sensor_count(self) -> int:
        return self.emg.shape[1]

    def validate(self) -> None:
        """Raise ValueError naming the problem if shapes or dtypes are not the frame layout."""
        sensors = self.emg.shape[1] if self.emg.ndim == 2 else -1
        expected = {
            "emg": (EMG_SAMPLES_PER_FRAME, sensors),
            "acc": (IMU_SAMPLES_PER_FRAME, 3 * sensors),
            "gyro": (IMU_SAMPLES_PER_FRAME, 3 * sensors),
        }
        for name, shape in expected.items():
            array = getattr(self, name)
            if array.dtype != np.float32:
                raise ValueError(f"frame {name} has dtype {array.dtype}; expected float32")
            if array.shape != shape:
                raise ValueError(f"frame {name} has shape {array.shape}; expected {shape}")
        if self.emg_first_index < 0 or self.imu_first_index < 0:
            raise ValueError("frame sample indices must be >= 0")
