"""What the emulator streams: the synthetic signer, a recording, or a deterministic test signal.

The emulator keeps time itself (one frame per 13.5 ms tick), so every source here is unpaced: an
iterator of ``Frame`` that returns the next frame at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from stream.frames import Frame
from stream.rates import EMG_SAMPLES_PER_FRAME, IMU_SAMPLES_PER_FRAME

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


def recording_frames(path: str, loop: bool = False) -> Iterator[Frame]:
    """Frames cut from a recording file (whole frames only), optionally looped."""
    from stream.recording import read_recording

    recording = read_recording(path)
    frame_count = min(recording.emg.shape[0] // EMG_SAMPLES_PER_FRAME, recording.acc.shape[0] // IMU_SAMPLES_PER_FRAME)
    if frame_count == 0:
        raise ValueError(f"{path}: shorter than one 13.5 ms frame")
    sequence = 0
    while True:
        for index in range(frame_count):
            emg = recording.emg[index * EMG_SAMPLES_PER_FRAME:(index + 1) * EMG_SAMPLES_PER_FRAME]
            acc = recording.acc[index * IMU_SAMPLES_PER_FRAME:(index + 1) * IMU_SAMPLES_PER_FRAME]
            gyro = recording.gyro[index * IMU_SAMPLES_PER_FRAME:(index + 1) * IMU_SAMPLES_PER_FRAME]
            yield Frame(sequence, sequence * EMG_SAMPLES_PER_FRAME, sequence * IMU_SAMPLES_PER_FRAME,
                        np.ascontiguousarray(emg, np.float32), np.ascontiguousarray(acc, np.float32),
                        np.ascontiguousarray(gyro, np.float32))
            sequence += 1
        if not loop:
            return


def synthetic_frames(config) -> Iterator[Frame]:
    """The synthetic signer (Data helper's ``SyntheticSource``), unpaced."""
    from stream.sources.synthetic import SyntheticSource

    return iter(SyntheticSource(config, realtime=False))


def open_frame_source(name: str, config, seed: int = 0) -> Iterator[Frame]:
    if name == "synthetic":
        return synthetic_frames(config)
    if name == "replay":
        if not config.acquire.replay.path:
            raise ValueError("--source replay needs [acquire.replay] path = a recording file")
        return recording_frames(str(config.resolve_path(config.acquire.replay.path)), loop=config.acquire.replay.loop)
    if name == "test":
        return deterministic_frames(len(config.sensors.names), seed)
    raise ValueError(f"unknown source {name!r}; expected one of {', '.join(SOURCE_NAMES)}")
