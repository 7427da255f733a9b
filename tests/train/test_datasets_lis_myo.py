"""lis-myo reader: the real archive (skipped without /work/shared/data), layouts, malformed files, sessions."""

from __future__ import annotations

import json
import tarfile
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from train.datasets.lis_myo import (
    LisMyoError,
    assign_sessions,
    imu_repeat_pattern,
    parse_sample,
    read_lis_myo,
    sessions_per_letter,
)

from real_data import LIS_MYO_ARCHIVE as ARCHIVE
from real_data import SHARED_DATA as DATA
from real_data import needs_lis_myo as needs_data


def record(seed: int = 0, stamp: str = "26/06/20/22:21:34", distinct: int = 300) -> dict:
    """A valid synthetic sample in the data set's JSON layout: 400 sEMG rows, 400 IMU records made of
    ``distinct`` samples, the others exact copies of their predecessor (never two copies in a row)."""
    rng = np.random.default_rng(seed)
    quaternions = rng.normal(size=(distinct, 4))
    quaternions /= np.linalg.norm(quaternions, axis=1, keepdims=True)
    gyro, acc = rng.normal(0, 30, (distinct, 3)), rng.normal(0, 0.5, (distinct, 3))
    doubled = set(rng.choice(distinct, 400 - distinct, replace=False).tolist())
    imu = []
    for index in range(distinct):
        item = {"gyroscope": gyro[index].tolist(), "acceleration": acc[index].tolist(),
                "orientation": quaternions[index].tolist()}
        imu.extend([item, dict(item)] if index in doubled else [item])
    return {"timestamp": stamp, "duration": 2000,
            "emg": {"frequency": 200, "data": rng.integers(-128, 128, (400, 8)).tolist()},
            "imu": {"frequency": 200, "data": imu}}


def write_tree(root: Path, letters="AB", per_letter=2) -> Path:
    dataset = root / "Dataset"
    for letter_number, letter in enumerate(letters):
        (dataset / letter).mkdir(parents=True)
        for number in range(per_letter):
            stamp = f"26/06/20/22:{21 + letter_number:02d}:{10 * number:02d}"
            text = json.dumps(record(seed=10 * letter_number + number, stamp=stamp))
            (dataset / letter / f"{letter.lower()}{number}-guid.json").write_text(text)
    return dataset


# --- the real data set ---------------------------------------------------------------------------

def test_data_folder_is_next_to_the_project():
    assert DATA == Path(__file__).resolve().parents[2].parent / "shared" / "data"
    assert (Path(__file__).resolve().parents[2] / "pyproject.toml").is_file()


@needs_data
def test_real_archive_shapes_units_and_rates(real_samples):
    assert len(real_samples) == 702
    letters = sorted({sample.letter for sample in real_samples})
    assert letters == [chr(code) for code in range(ord("A"), ord("Z") + 1)]
    assert all(sum(sample.letter == letter for sample in real_samples) == 27 for letter in letters)
    assert len({sample.guid for sample in real_samples}) == 702
    for sample in real_samples:
        assert sample.emg.shape == (400, 8) and sample.emg.dtype == np.float32
        assert -128 <= sample.emg.min() and sample.emg.max() <= 127
        assert sample.emg_rate_hz == Fraction(200) and sample.imu_rate_hz == Fraction(50)
        assert 284 <= len(sample.acc) == len(sample.gyro) == len(sample.orientation) <= 309
        assert len(sample.acc) + sample.imu_repeats == 400
    gravity = np.median([np.linalg.norm(sample.acc, axis=1).mean() for sample in real_samples])
    assert 0.95 < gravity < 1.05  # g at rest


@needs_data
def test_real_imu_repeats_a_quarter_of_its_records(real_samples):
    pattern = imu_repeat_pattern(real_samples)
    assert 0.245 < pattern["mean"] < 0.26 and 0.22 < pattern["min"] and pattern["max"] < 0.30


@pytest.fixture(scope="module")
def declared_subset():
    """Three samples of every letter read with imu="declared" (all 400 records at 200 Hz)."""
    if not ARCHIVE.is_file():
        pytest.skip(f"real data absent: {ARCHIVE} not found")
    taken: dict[str, int] = {}
    samples = []
    with tarfile.open(ARCHIVE, "r:*") as archive:
        for member in archive:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and taken.get(parts[1], 0) < 3:
                taken[parts[1]] = taken.get(parts[1], 0) + 1
                text = archive.extractfile(member).read()
                samples.append(parse_sample(text, parts[1], Path(parts[2]).stem, member.name, imu="declared"))
    return samples


@needs_data
def test_real_repeat_runs_are_copies_of_single_samples(declared_subset):
    runs = imu_repeat_pattern(declared_subset, declared=True)["run_lengths"]
    assert max(runs) <= 4 and runs[1] > runs[2] > 10 * runs.get(3, 0)


def _seconds_per_step(samples, step: int = 1) -> float:
    """Rotation between consecutive orientations over the gyroscope rate (fast movements only)."""
    angles, rates = [], []
    for sample in samples:
        quaternions, gyro = sample.orientation[::step], sample.gyro[::step]
        dots = np.clip(np.abs(np.sum(quaternions[1:] * quaternions[:-1], axis=1)), 0, 1)
        angle, rate = np.degrees(2 * np.arccos(dots)), np.linalg.norm(gyro[1:], axis=1)
        fast = rate > 60
        angles.append(angle[fast])
        rates.append(rate[fast])
    return float(np.sum(np.concatenate(angles)) / np.sum(np.concatenate(rates)))


@needs_data
def test_distinct_imu_samples_are_50_hz_steps(real_samples, declared_subset):
    # The orientation quaternion turns by gyro x 20 ms between distinct samples (measured 21.5 ms on
    # all 702): each is one 50 Hz sample. Every 4th declared record is three samples on (~62 ms), not one.
    one_step = _seconds_per_step(real_samples)
    assert 0.018 < one_step < 0.025
    assert 0.05 < _seconds_per_step(declared_subset, step=4) < 0.075
    assert 0.012 < _seconds_per_step(declared_subset) < 0.025  # a declared record: 18 ms on average, not 5


@needs_data
def test_real_sessions(real_samples):
    table = sessions_per_letter(real_samples)
    assert all(len(sessions) == 1 for sessions in table.values())  # each letter in one sitting
    session_of = {letter: next(iter(sessions)) for letter, sessions in table.items()}
    assert {session_of[letter] for letter in "ABCDEFGHIJKLMNOPQR"} == {"2020-06-26/1"}
    assert {session_of[letter] for letter in "STUVWX"} == {"2020-06-27/1"}
    assert {session_of[letter] for letter in "YZ"} == {"2020-06-27/2"}
    assert {sample.day.isoformat() for sample in real_samples} == {"2020-06-26", "2020-06-27"}


# --- layouts ------------------------------------------------------------------------------------

def test_folder_parent_folder_and_archive_read_the_same(tmp_path):
    dataset = write_tree(tmp_path / "clone")
    archive = tmp_path / "Dataset.tar.xz"
    with tarfile.open(archive, "w:xz") as handle:
        handle.add(dataset, arcname="Dataset")
    readings = [read_lis_myo(dataset), read_lis_myo(tmp_path / "clone"), read_lis_myo(archive)]
    for samples in readings:
        assert [(sample.letter, sample.guid) for sample in samples] == [
            ("A", "a0-guid"), ("A", "a1-guid"), ("B", "b0-guid"), ("B", "b1-guid")]
        assert samples[0].timestamp == datetime(2020, 6, 26, 22, 21, 0)
        assert samples[0].session == "2020-06-26/1"
    for first, other in zip(readings[0], readings[2]):
        np.testing.assert_array_equal(first.emg, other.emg)
        np.testing.assert_array_equal(first.orientation, other.orientation)


def test_native_drops_copies_and_declared_keeps_records():
    text = json.dumps(record(seed=3, distinct=297))
    native = parse_sample(text, "c", "g", "x.json")
    declared = parse_sample(text, "c", "g", "x.json", imu="declared")
    assert native.letter == "C"
    assert (len(native.acc), native.imu_repeats, native.imu_rate_hz) == (297, 103, Fraction(50))
    assert (len(declared.acc), declared.imu_repeats, declared.imu_rate_hz) == (400, 103, Fraction(200))
    np.testing.assert_array_equal(np.unique(declared.gyro, axis=0), np.unique(native.gyro, axis=0))


def test_rotation_is_accepted_for_orientation():
    data = record()
    for item in data["imu"]["data"]:
        item["rotation"] = item.pop("orientation")
    assert parse_sample(json.dumps(data), "A", "g", "x.json").orientation.shape == (300, 4)


def test_sessions_split_on_long_pauses_and_days():
    base = parse_sample(json.dumps(record()), "A", "g", "x.json")
    from dataclasses import replace
    stamps = ["27/06/20/12:49:53", "27/06/20/12:59:50", "27/06/20/13:20:39", "27/06/20/13:58:16",
              "28/06/20/09:00:00"]
    samples = [replace(base, timestamp=datetime.strptime(stamp, "%d/%m/%y/%H:%M:%S")) for stamp in stamps]
    assert [sample.session for sample in assign_sessions(samples[::-1])][::-1] == [
        "2020-06-27/1", "2020-06-27/1", "2020-06-27/2", "2020-06-27/3", "2020-06-28/1"]


# --- malformed files: one line naming the file and the problem ----------------------------------

def _drop(path):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


def _set(path, value):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _each_imu(key, function):
    def change(data):
        for item in data["imu"]["data"]:
            item[key] = function(item[key])
    return change


MALFORMED = [
    ("missing timestamp", _drop(["timestamp"]), "missing key 'timestamp'"),
    ("missing emg data", _drop(["emg", "data"]), "missing key 'emg.data'"),
    ("missing imu frequency", _drop(["imu", "frequency"]), "missing key 'imu.frequency'"),
    ("missing gyroscope", lambda data: data["imu"]["data"][7].pop("gyroscope"), "no 'gyroscope'"),
    ("bad timestamp", _set(["timestamp"], "2020-06-26 22:21"), "dd/mm/yy/HH:MM:SS"),
    ("399 emg rows", lambda data: data["emg"]["data"].pop(), "399 rows"),
    ("7 emg channels", lambda data: [row.pop() for row in data["emg"]["data"]], "shape (400, 7)"),
    ("ragged emg", lambda data: data["emg"]["data"][5].pop(), "emg.data"),
    ("emg 128", lambda data: data["emg"]["data"][3].__setitem__(2, 128), "-128..127"),
    ("emg 1.5", lambda data: data["emg"]["data"][3].__setitem__(2, 1.5), "whole numbers"),
    ("emg text", lambda data: data["emg"]["data"][3].__setitem__(2, "x"), "emg.data"),
    ("401 imu records", lambda data: data["imu"]["data"].append(data["imu"]["data"][-1]), "401 records"),
    ("acc NaN", lambda data: data["imu"]["data"][9]["acceleration"].__setitem__(0, float("nan")), "non-finite"),
    ("gyro too fast", lambda data: data["imu"]["data"][9]["gyroscope"].__setitem__(0, 5000.0), "deg/s"),
    ("acc too large", lambda data: data["imu"]["data"][9]["acceleration"].__setitem__(1, -40.0), " g,"),
    ("quaternion not unit", _each_imu("orientation", lambda q: [2 * value for value in q]), "unit quaternion"),
    ("quaternion of 3", _each_imu("orientation", lambda q: q[:3]), "shape (400, 3)"),
    ("negative duration", _set(["duration"], -5), "duration"),
    ("zero frequency", _set(["emg", "frequency"], 0), "emg.frequency"),
]


@pytest.mark.parametrize("change, expected", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_malformed_files_fail_with_one_line_naming_file_and_problem(tmp_path, change, expected):
    dataset = write_tree(tmp_path, letters="A", per_letter=1)
    path = dataset / "A" / "a0-guid.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(LisMyoError) as caught:
        read_lis_myo(dataset)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and expected in message, message


def test_not_json_and_empty_sources(tmp_path):
    dataset = write_tree(tmp_path / "one", letters="A", per_letter=1)
    (dataset / "A" / "a0-guid.json").write_text("{not json")
    with pytest.raises(LisMyoError, match="a0-guid.json: not valid JSON"):
        read_lis_myo(dataset)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LisMyoError, match="no <letter>/<guid>.json"):
        read_lis_myo(tmp_path / "empty")
    with pytest.raises(LisMyoError, match="no such file or folder"):
        read_lis_myo(tmp_path / "missing")
    (tmp_path / "junk.tar.xz").write_bytes(b"not an archive")
    with pytest.raises(LisMyoError, match="junk.tar.xz: not a tar archive"):
        read_lis_myo(tmp_path / "junk.tar.xz")
    with pytest.raises(ValueError, match="imu must be one of"):
        read_lis_myo(dataset, imu="every4th")


# ------------------------------------------------------------------------------ import into our format


def test_the_import_writes_a_dataset_in_the_myo_layout_that_replays_as_frames(tmp_path):
    """``python -m train.datasets lis-myo``: every sample a recording in the ``myo`` layout (sEMG counts
    at 200 Hz, the armband's IMU at 50 Hz over the same 2 s), splits stratified 70/10/20 per letter,
    and the replay source of a ``myo`` config streams it as 20 ms frames."""
    from stream.config import config_from_dict
    from stream.recording.dataset import open_dataset
    from stream.sources.replay import ReplaySource
    from train.datasets.__main__ import main

    archive = DATA / "lis-myo" / "Dataset.tar.xz"
    if not archive.exists():
        pytest.skip(f"{archive} is absent (../shared/data is not here)")
    assert main(["lis-myo", str(archive), "--out", str(tmp_path / "lis")]) == 0
    config = config_from_dict({"sensors": {"profile": "myo"}})
    with open_dataset(tmp_path / "lis") as dataset:
        assert len(dataset.isolated()) == 702 and dataset.labels == tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        within = dataset.split("within")
        assert {part: len(entries) for part, entries in within.items()} == {"train": 494, "val": 78, "test": 130}
        for part, share in (("val", 3), ("test", 5)):  # of 27 per letter
            assert all(sum(entry.label == letter for entry in within[part]) == share for letter in dataset.labels)
        recording = dataset.load(within["test"][0])
    assert recording.layout.signature() == config.layout.signature()
    assert recording.emg.shape == (400, 8) and recording.acc.shape == recording.gyro.shape == (100, 3)
    assert recording.emg_unit == "counts" and np.all(np.abs(recording.emg) <= 128)
    assert recording.annotations[0].label == within["test"][0].label
    frames = list(ReplaySource(config, recording=recording, realtime=False))
    assert len(frames) == 100 and frames[1].emg.shape == (4, 8) and frames[1].acc.shape == (1, 3)
    with open_dataset(tmp_path / "lis") as dataset:  # the test samples again as one stream, in recording order
        (session,) = dataset.sessions()
        stream = dataset.load(session)
        assert [annotation.label for annotation in stream.annotations] == [
            entry.label for entry in sorted(dataset.split("within")["test"],
                                            key=lambda entry: dataset.load(entry).metadata["timestamp"])]
        assert stream.emg.shape == (130 * 400, 8) and stream.layout.signature() == config.layout.signature()
    assert main(["lis-myo", str(archive), "--out", str(tmp_path / "lis")]) == 2  # never over an existing dataset
