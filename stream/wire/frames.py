"""The raw frame every source produces and every consumer of raw data reads.

Channel layout (also on the wire, see docs/protocol.md), for a ``stream.wire.layout.Layout``:
- ``emg``:  (emg samples per frame, S) float32, one column per sEMG sensor in ``[sensors] names`` order.
- ``acc``:  (IMU samples per frame, 3*I) float32, g; columns sensor-major: s1x, s1y, s1z, s2x, ...
- ``gyro``: (IMU samples per frame, 3*I) float32, deg/s; same column order as ``acc``.
A modality the layout does not have is an array with no columns (``absent``), so code that loops
over channels needs no special case. Trigno: 15 sEMG + 2 IMU samples in 13.5 ms.

Time is sample counting, never wall clocks: ``emg_first_index`` and ``imu_first_index`` are the
indices since START of the first sample in this frame (frame ``k`` normally starts at k times the
samples per frame). A sensor that dropped out sends NaN for its channels: NaN is data-loss made
visible, not a value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.wire.layout import AXES, MODALITIES, Layout

__all__ = ["AXES", "MODALITIES", "Frame", "absent", "silent_frame"]


def absent(rows: int) -> np.ndarray:
    """The array of a modality the layout does not have: ``rows`` samples, no channels."""
    return np.zeros((rows, 0), np.float32)


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

    def validate(self, layout: Layout) -> None:
        """Raise ValueError naming the problem if shapes or dtypes are not ``layout``'s."""
        for name in MODALITIES:
            shape = (layout.samples_per_frame(name) if name in layout.modalities else getattr(self, name).shape[0],
                     layout.channel_count(name))
            array = getattr(self, name)
            if array.dtype != np.float32:
                raise ValueError(f"frame {name} has dtype {array.dtype}; expected float32")
            if array.shape != shape:
                raise ValueError(f"frame {name} has shape {array.shape}; the layout ({layout.describe()}) needs {shape}")
        if self.emg_first_index < 0 or self.imu_first_index < 0:
            raise ValueError("frame sample indices must be >= 0")


def silent_frame(layout: Layout, sequence: int) -> Frame:
    """Frame number ``sequence`` of a stream of zeros in ``layout`` (warm-ups, tests)."""
    emg_rows, imu_rows = layout.emg_samples_per_frame, layout.imu_samples_per_frame
    return Frame(sequence, sequence * emg_rows, sequence * imu_rows,
                 *(np.zeros((layout.samples_per_frame(name) if name in layout.modalities else imu_rows,
                             layout.channel_count(name)), np.float32) for name in MODALITIES))
