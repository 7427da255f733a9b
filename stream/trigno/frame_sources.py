"""What the emulator streams: the synthetic signer, a recording (replay), or a deterministic test signal.

The emulator keeps time itself (one frame per 13.5 ms tick), so every source here is unpaced: an
iterator of ``Frame`` that returns the next frame at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from stream.wire.frames import Frame
from stream.wire.rates import EMG_SAMPLES_PER_FRAME, IMU_SAMPLES_PER_FRAME

SOURCE_NAMES = ("synthetic", "replay", "test")


def deterministic_frames(sensor_count: int, seed: int = 0) -> Iterator[Frame]:
    """An endless, reproducible signal with realistic levels: sEMG ~0.05 mV noise, gravity plus a
    slow wobble on the accelerometer, a few deg/s on the gyroscope. Frame k is the same every run."""
    for sequence in itertools.count():
        generator = np.random.default_rng([seed, sequence])
        emg = generator.normal(0.0, 0.05, (EMG_SAMPLES_PER_FRAME, sensor_count)).astype(np.float32)
        phase = 2 * np.pi * 0.5 * (sequence * IMU_SAMPLES_PER_FRAME + np.arange(IMU_SAMPLES_PER_FRAME)) * 27 / 4000
        acc = np.tile(np.array([0.0, 0.0, 1.0], np.float32), (IMU_SAMPLES_PER_FRAME, sensor_count))
        acc += (0.1 * np.sin(phase)[:, None] + generator.normal(0, 0.01, acc.shape)).astype(np.float32)
        gyro = generator.normal(0.0, 3.0, acc.shape).astype(np.float32)
        yield Frame(sequence, sequence * EMG_SAMPLES_PER_FRAME, sequence * IMU_SAMPLES_PER_FRAME, emg, acc, gyro)


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
        return deterministic_frames(len(config.sensors.names), seed)
    raise ValueError(f"unknown source {name!r}; expected one of {', '.join(SOURCE_NAMES)}")
