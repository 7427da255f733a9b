"""Frame sources for stream-acquire: the synthetic signer and replay of recordings."""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest

from stream.config import config_from_dict
from stream.recording import Annotation, Recording, write_recording
from stream.sources.replay import ReplaySource
from stream.sources.synthetic import SyntheticSource

FRAME_S = 0.0135


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def synthetic_config(**settings):
    return config_from_dict({"acquire": {"source": "synthetic", "synthetic": settings}})


def take(source, count: int) -> list:
    return [next(source) for _ in range(count)]


def test_synthetic_frames_are_contiguous_valid_and_annotated():
    source = SyntheticSource(synthetic_config(rest_s=[1.0, 1.5]), realtime=False)
    frames = take(source, 1500)  # 20 s
    for number, frame in enumerate(frames):
        frame.validate(synthetic_config(rest_s=[1.0, 1.5]).layout)
        assert (frame.emg_first_index, frame.imu_first_index) == (15 * number, 2 * number)
    emitted_end = 15 * len(frames)
    assert 5 <= len(source.annotations) <= 9
    assert all(a.end_index <= emitted_end for a in source.annotations)
    starts = np.array([a.start_index for a in source.annotations]) / float(Fraction(10000, 9))
    ends = np.array([a.end_index for a in source.annotations]) / float(Fraction(10000, 9))
    assert np.all((starts[1:] - ends[:-1] >= 1.0 - 1e-3) & (starts[1:] - ends[:-1] <= 1.5 + 1e-3))
    assert np.all((ends - starts >= 0.5) & (ends - starts <= 1.5))
    # Pieces are rendered separately and meet in the rests: no jumps there.
    acc = np.concatenate([frame.acc for frame in frames])
    resting = np.ones(len(acc) - 1, bool)
    for annotation in source.annotations:
        resting[annotation.start_index * 2 // 15 - 15: annotation.end_index * 2 // 15 + 15] = False
    resting[source.annotations[-1].end_index * 2 // 15:] = False  # the next sign may have begun
    steps = np.abs(np.diff(acc, axis=0))
    assert np.nanmax(steps[resting[: len(steps)]]) < 0.1


def test_synthetic_emg_is_quiet_at_rest_and_active_during_signs():
    source = SyntheticSource(synthetic_config(dropouts=False), realtime=False)
    emg = np.concatenate([frame.emg for frame in take(source, 1000)]).astype(np.float64)
    inside = np.zeros(len(emg), bool)
    for annotation in source.annotations:
        inside[annotation.start_index:annotation.end_index] = True
    # A sign still under way at the end is not annotated yet: only up to the last annotated one.
    inside[source.annotations[-1].end_index:] = True
    quiet = np.sqrt(np.mean(emg[~inside] ** 2, axis=0))
    active = np.sqrt(np.mean(emg[inside] ** 2, axis=0))
    assert np.all(quiet < 0.02) and active.max() > 0.05 and active.max() > 10 * quiet.max()


def test_synthetic_is_deterministic_and_honours_the_sign_list():
    first = SyntheticSource(synthetic_config(seed=3, signs=["hello", "water"]), realtime=False)
    second = SyntheticSource(synthetic_config(seed=3, signs=["hello", "water"]), realtime=False)
    for a, b in zip(take(first, 800), take(second, 800)):
        np.testing.assert_array_equal(a.emg, b.emg)
    assert first.annotations == second.annotations
    assert {a.label for a in first.annotations} <= {"hello", "water"} and first.annotations


def test_synthetic_refuses_unknown_signs_and_other_sensors():
    with pytest.raises(ValueError, match="unknown sign.*'flying'"):
        SyntheticSource(synthetic_config(signs=["flying"]))
    config = config_from_dict({"sensors": {"names": ["a", "b"]}})
    with pytest.raises(ValueError, match="wears 6 sensors"):
        SyntheticSource(config)


def test_synthetic_paces_frames_in_real_time():
    clock = FakeClock()
    source = SyntheticSource(synthetic_config(), realtime=True, clock=clock, sleep=clock.sleep)
    start = clock.now
    take(source, 100)
    assert clock.now == pytest.approx(start + 100 * FRAME_S, abs=1e-9)
    wall = time.monotonic()
    take(SyntheticSource(synthetic_config(), realtime=True), 20)
    assert 0.2 < time.monotonic() - wall < 1.5  # 20 frames = 0.27 s of signing


def write_test_recording(path, frames=40, **changes):
    rng = np.random.default_rng(0)
    values = dict(
        emg=rng.standard_normal((15 * frames + 7, 6)).astype(np.float32),
        acc=rng.standard_normal((2 * frames + 1, 18)).astype(np.float32),
        gyro=rng.standard_normal((2 * frames + 1, 18)).astype(np.float32),
        emg_rate_hz=Fraction(10000, 9), imu_rate_hz=Fraction(4000, 27),
        sensor_names=config_from_dict({}).sensors.names, emg_first_index=150, imu_first_index=20,
        annotations=[Annotation("hello", 200, 300), Annotation("water", 400, 600)], metadata={},
    )
    values.update(changes)
    write_recording(path, Recording(**values))
    return values


def replay_config(path, **settings):
    return config_from_dict({"acquire": {"source": "replay", "replay": {"path": str(path), **settings}}})


def test_replay_returns_the_recording_frame_by_frame(tmp_path):
    values = write_test_recording(tmp_path / "r.h5")
    source = ReplaySource(replay_config(tmp_path / "r.h5"), realtime=False)
    frames = list(source)
    assert len(frames) == 40  # the trailing partial frame is dropped
    assert frames[0].emg_first_index == 150 and frames[0].imu_first_index == 20
    np.testing.assert_array_equal(np.concatenate([f.emg for f in frames]), values["emg"][:600])
    np.testing.assert_array_equal(np.concatenate([f.gyro for f in frames]), values["gyro"][:80])
    assert [a.label for a in source.annotations] == ["hello", "water"]


def test_replay_loops_with_increasing_indices_and_shifted_annotations(tmp_path):
    write_test_recording(tmp_path / "r.h5")
    source = ReplaySource(replay_config(tmp_path / "r.h5", loop=True), realtime=False)
    frames = take(source, 100)
    assert [f.emg_first_index for f in frames] == [150 + 15 * k for k in range(100)]
    assert [a.start_index for a in source.annotations] == [200, 400, 800, 1000, 1400]  # 100 frames = 2.5 passes of 40


def test_replay_speed_paces_frames(tmp_path):
    write_test_recording(tmp_path / "r.h5")
    clock = FakeClock()
    source = ReplaySource(replay_config(tmp_path / "r.h5", speed=10.0), realtime=True, clock=clock, sleep=clock.sleep)
    take(source, 30)
    assert clock.now - 100.0 == pytest.approx(30 * FRAME_S / 10, abs=1e-9)


def test_replay_refuses_mismatched_recordings(tmp_path):
    write_test_recording(tmp_path / "rate.h5", emg=np.zeros((680, 6), np.float32), emg_rate_hz=Fraction(34000, 27))
    with pytest.raises(ValueError, match="mismatched rates"):
        ReplaySource(replay_config(tmp_path / "rate.h5"))
    names = tuple(f"s{k}" for k in range(6))
    write_test_recording(tmp_path / "names.h5", sensor_names=names)
    with pytest.raises(ValueError, match="differ from \\[sensors\\] names"):
        ReplaySource(replay_config(tmp_path / "names.h5"))
    with pytest.raises(ValueError, match="no such file"):
        ReplaySource(replay_config(tmp_path / "absent.h5"))


def test_sources_import_neither_scipy_nor_tensorflow():
    """The demo runs the simulator on a Pi: it must stay numpy + h5py only."""
    import subprocess
    import sys

    code = ("import sys, stream.sources.synthetic, stream.sources.replay; "
            "print(sorted(m for m in ('scipy', 'tensorflow', 'numba') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
