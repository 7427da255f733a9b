"""The recording format: round trips, atomic writes, and clear errors for bad files."""

from __future__ import annotations

from fractions import Fraction

import h5py
import numpy as np
import pytest

from stream.recording import (
    ALL_SENSORS,
    Annotation,
    Gap,
    Recording,
    RecordingError,
    list_recordings,
    read_recording,
    write_recording,
    write_recordings,
)

SENSORS = ("a", "b", "c")


def make_recording(seconds: float = 1.0, seed: int = 0, **changes) -> Recording:
    rng = np.random.default_rng(seed)
    frames = int(seconds / 0.0135)
    values = dict(
        emg=rng.standard_normal((15 * frames, 3)).astype(np.float32),
        acc=rng.standard_normal((2 * frames, 9)).astype(np.float32),
        gyro=rng.standard_normal((2 * frames, 9)).astype(np.float32),
        emg_rate_hz=Fraction(10000, 9), imu_rate_hz=Fraction(4000, 27), sensor_names=SENSORS,
        emg_first_index=150, imu_first_index=20,
        annotations=[Annotation("hello", 200, 400), Annotation("thank_you", 500, 600)],
        metadata={"signer": "s1", "repetition": 3, "nested": {"x": [1, 2.5]}},
        gaps=[Gap(1, 300, 315, 40, 42), Gap(ALL_SENSORS, 450, 465, 60, 62)],
    )
    values.update(changes)
    return Recording(**values)


def assert_same(first: Recording, second: Recording) -> None:
    for name in ("emg", "acc", "gyro"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    for name in ("emg_rate_hz", "imu_rate_hz", "sensor_names", "emg_first_index", "imu_first_index",
                 "annotations", "metadata", "gaps", "complete"):
        assert getattr(first, name) == getattr(second, name), name


def test_round_trip_keeps_every_field(tmp_path):
    recording = make_recording()
    recording.emg[10:20, 1] = np.nan
    path = write_recording(tmp_path / "one.h5", recording)
    loaded = read_recording(path)
    assert_same(recording, loaded)
    assert isinstance(loaded.emg_rate_hz, Fraction) and loaded.emg.dtype == np.float32


def test_many_recordings_in_one_file_need_a_key(tmp_path):
    path = write_recordings(tmp_path / "many.h5", {"r1": make_recording(seed=1), "r2": make_recording(seed=2)})
    assert list_recordings(path) == ["r1", "r2"]
    assert_same(read_recording(path, "r2"), make_recording(seed=2))
    with pytest.raises(RecordingError, match="holds 2 recordings; pass a key"):
        read_recording(path)
    with pytest.raises(RecordingError, match="no recording 'r3'"):
        read_recording(path, "r3")


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_recording(tmp_path / "keep.h5", make_recording(seed=5))

    def items():
        yield "good", make_recording(seed=6)
        yield "bad", make_recording(acc=np.zeros((10, 8), np.float32))

    with pytest.raises(RecordingError, match="acc has shape"):
        write_recordings(path, items())
    assert_same(read_recording(path), make_recording(seed=5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5"]


@pytest.mark.parametrize("changes, message", [
    ({"acc": np.zeros((148, 6), np.float32)}, "missing channels"),
    ({"emg": np.zeros((100, 3), np.float64)}, "float32"),
    ({"imu_rate_hz": Fraction(2000, 27)}, "rates do not match the sample counts"),
    ({"annotations": [Annotation("x", 0, 10)]}, "outside the sEMG samples"),
    ({"annotations": [Annotation("", 200, 300)]}, "empty label"),
    ({"gaps": [Gap(7, 0, 1, 0, 1)]}, "names sensor 7"),
    ({"sensor_names": ("a", "a", "b")}, "not unique"),
    ({"metadata": {"array": np.zeros(2)}}, "metadata is not plain JSON"),
])
def test_invalid_recordings_are_refused_with_the_reason(tmp_path, changes, message):
    with pytest.raises(RecordingError, match=message):
        write_recording(tmp_path / "bad.h5", make_recording(**changes))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(RecordingError, match="no such file"):
        read_recording(tmp_path / "nope.h5")
    with pytest.raises(RecordingError, match="is a directory"):
        read_recording(tmp_path)


def test_truncated_file_names_the_file(tmp_path):
    path = write_recording(tmp_path / "cut.h5", make_recording(seconds=3.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match="cut.h5"):
        read_recording(path)


def test_garbage_file_is_refused(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(RecordingError, match=r"garbage\.h5: not a readable HDF5"):
        read_recording(path)


def test_foreign_hdf5_file_is_refused(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as handle:
        handle["data"] = np.zeros(3)
    with pytest.raises(RecordingError, match="not a signstream recording file"):
        read_recording(path)


def test_missing_dataset_and_bad_attributes(tmp_path):
    path = write_recording(tmp_path / "edit.h5", make_recording())
    with h5py.File(path, "r+") as handle:
        del handle["recordings/recording/gyro"]
    with pytest.raises(RecordingError, match="missing dataset.*gyro"):
        read_recording(path)
    path = write_recording(tmp_path / "rate.h5", make_recording())
    with h5py.File(path, "r+") as handle:
        handle["recordings/recording"].attrs["emg_rate_hz"] = "fast"
    with pytest.raises(RecordingError, match="bad rate attribute"):
        read_recording(path)
    path = write_recording(tmp_path / "newer.h5", make_recording())
    with h5py.File(path, "r+") as handle:
        handle.attrs["format_version"] = 99
    with pytest.raises(RecordingError, match="newer than this reader"):
        read_recording(path)


def test_cut_keeps_whole_frames_aligned_and_absolute_indices():
    recording = make_recording(seconds=1.0)  # sEMG from 150, IMU from 20: frame k is sEMG 150 + 15k, IMU 20 + 2k
    part = recording.cut(290, 460)  # frames 9 (sEMG 285..300) through 20 (sEMG 450..465)
    assert (part.emg_first_index, part.imu_first_index) == (285, 38)
    assert part.emg.shape[0] == 15 * 12 and part.acc.shape[0] == part.gyro.shape[0] == 2 * 12
    np.testing.assert_array_equal(part.emg, recording.emg[135:315])
    np.testing.assert_array_equal(part.gyro, recording.gyro[18:42])
    assert part.annotations == []  # neither sign lies wholly inside
    assert part.gaps == [Gap(1, 300, 315, 40, 42), Gap(ALL_SENSORS, 450, 465, 60, 62)]
    part.validate("cut")
    narrow = recording.cut(305, 310)  # inside one frame: that whole frame; the sensor-1 gap covers it
    assert (narrow.emg_first_index, narrow.emg.shape[0], narrow.gaps) == (300, 15, [Gap(1, 300, 315, 40, 42)])
    clipped = recording.cut(-1000, 10**6)  # beyond both ends: the whole recording
    assert_same(clipped, recording)
    assert recording.cut(10**6, 10**6 + 5).emg.shape[0] == 0
    around_hello = recording.cut(195, 405)
    assert around_hello.annotations == [Annotation("hello", 200, 400)]
    assert around_hello.gaps == [Gap(1, 300, 315, 40, 42)]
