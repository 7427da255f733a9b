"""What the emulator streams: the synthetic signer, a recording (replay), or a deterministic test signal.

The emulator keeps time itself (one frame per 13.5 ms tick), so every source here is unpaced: an
iterator of ``Frame`` that returns the next frame at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from stream.wire.frames import Frame, absent
from stream.wire.layout import IMU_MODALITIES, MODALITIES, Layout
from stream.wire.rates import EMG_SAMPLES_PER_FRAME, IMU_RATE_HZ, IMU_SAMPLES_PER_FRAME

SOURCE_NAMES = ("synthetic", "replay", "test")


def deterministic_frames(sensor_count: int, seed: int = 0, layout: Layout | None = None) -> Iterator[Frame]:
    """An endless, reproducible signal with realistic levels: sEMG ~0.05 mV noise, gravity plus a
    slow wobble on the accelerometer, a few deg/s on the gyroscope. Frame k is the same every run.

    ``layout`` (default: Trigno's) gives the samples per frame and the modalities; one it leaves out
    is an array with no columns, the others are the same draws whatever is left out."""
    emg_rows = layout.emg_samples_per_frame if layout else EMG_SAMPLES_PER_FRAME
    imu_rate = layout.imu_rate_hz if layout else IMU_RATE_HZ
    # The IMU clock still frames an sEMG-only layout: draw its rows so the sEMG draws stay the same.
    imu_rows = int(imu_rate * layout.frame_period_s) if layout else IMU_SAMPLES_PER_FRAME
    modalities = layout.modalities if layout else MODALITIES
    sent_imu_rows = imu_rows if any(name in modalities for name in IMU_MODALITIES) else 0
    for sequence in itertools.count():
        generator = np.random.default_rng([seed, sequence])
        emg = generator.normal(0.0, 0.05, (emg_rows, sensor_count)).astype(np.float32)
        phase = 2 * np.pi * 0.5 * (sequence * imu_rows + np.arange(imu_rows)) * imu_rate.denominator / imu_rate.numerator
        acc = np.tile(np.array([0.0, 0.0, 1.0], np.float32), (imu_rows, sensor_count))
        acc += (0.1 * np.sin(phase)[:, None] + generator.normal(0, 0.01, acc.shape)).astype(np.float32)
        gyro = generator.normal(0.0, 3.0, acc.shape).astype(np.float32)
        acc, gyro = (array if name in modalities else absent(sent_imu_rows) for name, array in (("acc", acc), ("gyro", gyro)))
        yield Frame(sequence, sequence * emg_rows, sequence * sent_imu_rows, emg, acc, gyro)


def synthetic_frames(config) -> Iterator[Frame]:
    """The synthetic signer (Data helper's ``SyntheticSource``), unpaced."""
    from stream.sources.synthetic import SyntheticSource

    return iter(SyntheticSource(config, realtime=False))


def replay_frames(config) -> Iterator[Frame]:
    """``[acquire.replay]`` path (key, loop) through the Data helper's ``ReplaySource``, unpaced."""
    from stream.sources.replay import ReplaySource

    return iter(ReplaySource(config, realtime=False))


def open_frame_source(name: str, config, seed: int = 0) -> Iterator[Frame]:
    if name == "synthetic":
        return synthetic_frames(config)
    if name == "replay":
        return replay_frames(config)
    if name == "test":
        return deterministic_frames(len(config.sensors.names), seed, config.layout)
    raise ValueError(f"unknown source {name!r}; expected one of {', '.join(SOURCE_NAMES)}")
