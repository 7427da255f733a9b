"""Splits (deterministic, stratified, disjoint) and opening datasets (clear errors for bad ones)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from stream.recording import read_recording, write_recordings
from stream.recording.dataset import DatasetError, open_dataset
from train.splits import make_splits
from train.synth.build import generate_dataset


def fake_entries(signers=3, signs=4, repetitions=20):
    return [{"id": f"s{s}.l{l}.r{r}", "kind": "isolated", "signer": f"s{s}", "label": f"l{l}", "repetition": r}
            for s in range(signers) for l in range(signs) for r in range(repetitions)]


def test_within_is_14_3_3_per_signer_and_sign_and_disjoint():
    splits = make_splits(fake_entries(), seed=0)
    within = splits["within"]
    ids = within["train"] + within["val"] + within["test"]
    assert len(ids) == len(set(ids)) == 3 * 4 * 20
    for part, count in (("train", 14), ("val", 3), ("test", 3)):
        groups = Counter(entry_id.rsplit(".", 1)[0] for entry_id in within[part])
        assert set(groups.values()) == {count}, part
        assert len(groups) == 12


def test_splits_are_deterministic_and_depend_on_the_seed():
    assert make_splits(fake_entries(), seed=4) == make_splits(list(reversed(fake_entries())), seed=4)
    assert make_splits(fake_entries(), seed=4)["within"]["test"] != make_splits(fake_entries(), seed=5)["within"]["test"]


def test_loso_holds_out_exactly_one_signer_per_fold():
    splits = make_splits(fake_entries(), seed=0)
    assert [fold["held_out_signer"] for fold in splits["loso"]] == ["s0", "s1", "s2"]
    for fold in splits["loso"]:
        held_out = fold["held_out_signer"]
        assert all(entry_id.startswith(held_out + ".") for entry_id in fold["test"])
        assert not any(entry_id.startswith(held_out + ".") for entry_id in fold["train"] + fold["val"])
        assert len(fold["test"]) == 80 and len(fold["train"]) + len(fold["val"]) == 160


def test_too_few_repetitions_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 3 repetitions"):
        make_splits(fake_entries(repetitions=2))


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data") / "small"
    generate_dataset(directory, signers=2, repetitions=3, seed=1, sessions=1, workers=1, progress=False)
    return directory


def test_generated_dataset_opens_and_loads(small_dataset):
    with open_dataset(small_dataset) as dataset:
        assert len(dataset.labels) == 50 and dataset.signers == ["signer-01", "signer-02"]
        assert len(dataset.isolated()) == 300 and len(dataset.sessions()) == 2
        assert dataset.emg_rate_hz == Fraction(10000, 9)
        within = dataset.split("within")
        assert [len(within[part]) for part in ("train", "val", "test")] == [100, 100, 100]
        fold = dataset.split("loso", held_out_signer="signer-02")
        assert {entry.signer for entry in fold["test"]} == {"signer-02"}
        entry = within["test"][0]
        recording = dataset.load(entry)
        assert recording.annotations[0].label == entry.label == recording.metadata["label"]
        assert read_recording(dataset.path(entry), entry.key).annotations == recording.annotations
        session = dataset.load(dataset.sessions("signer-01")[0])
        assert len(session.annotations) >= 15
        with pytest.raises(DatasetError, match="no LOSO fold for signer 'x'"):
            dataset.split("loso", held_out_signer="x")
        with pytest.raises(DatasetError, match="unknown label 'xyz'"):
            dataset.label_index("xyz")


def test_generation_refuses_to_overwrite_a_dataset(small_dataset):
    with pytest.raises(FileExistsError, match="never overwritten"):
        generate_dataset(small_dataset, signers=1, repetitions=3, sessions=0, progress=False)


def test_generation_does_not_depend_on_worker_count(small_dataset, tmp_path):
    generate_dataset(tmp_path / "two", signers=2, repetitions=3, seed=1, sessions=0, workers=2, progress=False)
    with open_dataset(small_dataset) as one, open_dataset(tmp_path / "two") as two:
        for entry_id in ("signer-01.good-r00", "signer-02.sister-r02"):
            np.testing.assert_array_equal(one.load(entry_id).emg, two.load(entry_id).emg)
        assert one.splits["within"] == two.splits["within"]


def copy(small_dataset, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(small_dataset, target)
    return target


def edit_index(directory, change):
    index = json.loads((directory / "index.json").read_text())
    change(index)
    (directory / "index.json").write_text(json.dumps(index))


def test_missing_empty_and_non_dataset_directories(tmp_path):
    with pytest.raises(DatasetError, match="no such directory"):
        open_dataset(tmp_path / "absent")
    with pytest.raises(DatasetError, match="empty directory"):
        open_dataset(tmp_path)
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(DatasetError, match="no index.json"):
        open_dataset(tmp_path)


def test_corrupt_index_names_the_file(small_dataset, tmp_path):
    directory = copy(small_dataset, tmp_path)
    (directory / "index.json").write_text('{"format": "signstream-dataset", "labels": [')
    with pytest.raises(DatasetError, match=r"index.json: not valid JSON"):
        open_dataset(directory)


def test_unknown_label_in_index(small_dataset, tmp_path):
    directory = copy(small_dataset, tmp_path)
    edit_index(directory, lambda index: index["entries"][0].update(label="flying"))
    with pytest.raises(DatasetError, match="unknown label 'flying'"):
        open_dataset(directory)


def test_missing_recording_file(small_dataset, tmp_path):
    directory = copy(small_dataset, tmp_path)
    (directory / "recordings" / "signer-02.h5").unlink()
    with pytest.raises(DatasetError, match=r"signer-02.h5: listed in index.json but missing"):
        open_dataset(directory)


def test_splits_naming_unknown_recordings(small_dataset, tmp_path):
    directory = copy(small_dataset, tmp_path)
    splits = json.loads((directory / "splits.json").read_text())
    splits["within"]["test"].append("nobody.nothing-r00")
    (directory / "splits.json").write_text(json.dumps(splits))
    with pytest.raises(DatasetError, match="unknown recording"):
        open_dataset(directory)


def test_recording_with_mismatched_rates_or_unknown_label(small_dataset, tmp_path):
    directory = copy(small_dataset, tmp_path)
    path = directory / "recordings" / "signer-01-sessions.h5"
    session = read_recording(path, "session-00")
    session.emg_rate_hz = Fraction(34000, 27)
    session.emg = np.resize(session.emg, (session.acc.shape[0] * 17 // 2, session.emg.shape[1]))
    write_recordings(path, {"session-00": session})
    with open_dataset(directory) as dataset:
        with pytest.raises(DatasetError, match="mismatched rates"):
            dataset.load("signer-01.session-00")
    session = read_recording(small_dataset / "recordings" / "signer-01-sessions.h5", "session-00")
    session.annotations[0] = dataclasses.replace(session.annotations[0], label="flying")
    write_recordings(path, {"session-00": session})
    with open_dataset(directory) as dataset:
        with pytest.raises(DatasetError, match="label 'flying' is not one of"):
            dataset.load("signer-01.session-00")


def test_truncated_recording_file_in_a_dataset(small_dataset, tmp_path):
    directory = copy(small_dataset, tmp_path)
    path = directory / "recordings" / "signer-01.h5"
    path.write_bytes(path.read_bytes()[:100_000])
    with open_dataset(directory) as dataset:
        with pytest.raises(ValueError, match="signer-01.h5"):
            dataset.load("signer-01.good-r00")


def test_summary_counts_signs_signers_and_rates(small_dataset, capsys):
    from train.summary import main, summarize

    summary = summarize(str(small_dataset), scan=True)
    assert summary["isolated"] == 300 and summary["sessions"] == 2
    assert set(summary["per_label"].values()) == {6} and summary["per_signer"] == {"signer-01": 150, "signer-02": 150}
    assert summary["emg_rate_hz"].startswith("10000/9") and summary["per_signer_and_label_range"] == [3, 3]
    assert 0.5 <= summary["scan"]["sign_duration_s"]["min"] and summary["scan"]["sign_duration_s"]["max"] <= 1.5
    assert main([str(small_dataset)]) == 0 and "300 isolated" in capsys.readouterr().out
    assert main([str(small_dataset / "recordings")]) == 2


def own_recording(signer, label=None, repetition=None, annotations=None, rate=Fraction(10000, 9), seconds=1.0):
    from stream.recording import Annotation, Recording

    emg_n = int(seconds * rate)
    imu_n = int(seconds * Fraction(4000, 27))
    metadata = {"signer": signer}
    if repetition is not None:
        metadata["repetition"] = repetition
    return Recording(emg=np.zeros((emg_n, 2), np.float32), acc=np.zeros((imu_n, 6), np.float32),
                     gyro=np.zeros((imu_n, 6), np.float32), emg_rate_hz=rate, imu_rate_hz=Fraction(4000, 27),
                     sensor_names=("a", "b"), metadata=metadata,
                     annotations=annotations if annotations is not None else [Annotation(label, 100, 900)])


def test_index_a_directory_of_own_recordings(tmp_path):
    from stream.recording import Annotation, write_recording
    from train.dataset import index_directory, main

    for signer in ("ana", "ben"):
        (tmp_path / signer).mkdir()
        for label in ("hello", "water"):
            for repetition in range(3):
                write_recording(tmp_path / signer / f"{label}-{repetition}.h5", own_recording(signer, label))
    write_recording(tmp_path / "ana" / "session.h5", own_recording(
        "ana", annotations=[Annotation("hello", 10, 200), Annotation("water", 300, 500)], seconds=2.0))
    assert main(["index", str(tmp_path)]) == 0
    with open_dataset(tmp_path) as dataset:
        assert dataset.labels == ("hello", "water") and dataset.signers == ["ana", "ben"]
        assert len(dataset.isolated()) == 12 and len(dataset.sessions("ana")) == 1
        assert sorted(e.repetition for e in dataset.isolated() if e.signer == "ben" and e.label == "water") == [0, 1, 2]
        assert len(dataset.split("within")["test"]) == 4
        assert dataset.load(dataset.sessions()[0]).annotations[1].label == "water"
    with pytest.raises(DatasetError, match="already has index.json"):
        index_directory(tmp_path)


def test_indexing_refuses_unusable_recordings(tmp_path):
    from stream.recording import write_recording
    from train.dataset import index_directory

    with pytest.raises(DatasetError, match="no recording files"):
        index_directory(tmp_path)
    write_recording(tmp_path / "a.h5", own_recording("ana", "hello"))
    write_recording(tmp_path / "b.h5", own_recording("ana", "hello", rate=Fraction(34000, 27)))
    with pytest.raises(DatasetError, match=r"b.h5:recording: rates/sensors .* \(mismatched rates or sensors\)"):
        index_directory(tmp_path)
    (tmp_path / "b.h5").unlink()
    recording = own_recording("ana", "hello")
    recording.metadata = {}
    write_recording(tmp_path / "c.h5", recording)
    with pytest.raises(DatasetError, match="c.h5:recording: metadata has no 'signer'"):
        index_directory(tmp_path)
    (tmp_path / "c.h5").unlink()
    with pytest.raises(DatasetError, match="label\\(s\\) 'hello' that --labels does not list"):
        index_directory(tmp_path, labels=["water"])


def test_calibration_proxy_is_far_above_chance(small_dataset):
    from train.synth.calibrate import evaluate_dataset

    result = evaluate_dataset(str(small_dataset))  # 1 training + 1 validation repetition per sign here
    assert 0.3 < result["within_test"] <= 1.0  # chance is 0.02
    assert set(result["loso_folds"]) == {"signer-01", "signer-02"}


def test_guided_recordings_give_one_isolated_sign_per_annotation(small_dataset, tmp_path):
    """stream-record's guided sessions -> index -> training windows: each prompted sign is cut out with
    enough context that its window is what preprocessing the whole recording gives."""
    from stream.config import config_from_dict
    from stream.dsp.preprocess import Preprocessor
    from stream.recording import write_recording
    from stream.wire.rates import sample_index_at
    from train.dataset import index_directory
    from train.distill.data import build_window_set, plan_from_config

    with open_dataset(small_dataset) as generated:
        sessions = [generated.load(entry) for entry in generated.sessions()]
        labels = list(generated.labels)
    for number, session in enumerate(sessions):
        session.metadata = {"kind": "guided", "signer": session.metadata["signer"], "source": "stream-record"}
        for copy in range(3):  # three rounds through the signs: enough repetitions to split
            write_recording(tmp_path / f"guided-{number}-{copy}.h5", session)
    index_directory(tmp_path, labels=labels)
    config = config_from_dict({})
    plan = plan_from_config(config)
    with open_dataset(tmp_path) as dataset:
        entries = dataset.isolated()
        assert len(entries) == 3 * sum(len(session.annotations) for session in sessions) and not dataset.sessions()
        assert all(entry.id.endswith(f"#{entry.annotation}") for entry in entries)
        for entry in entries[:5]:
            assert dataset.sign(entry).label == entry.label
        per_sign = Counter((entry.signer, entry.label) for entry in entries)
        for (signer, label), count in per_sign.items():
            assert sorted(e.repetition for e in entries if (e.signer, e.label) == (signer, label)) == list(range(count))
        window_set = build_window_set(dataset, entries, config, plan)
        assert len(window_set) >= 0.9 * len(entries)
        whole = {number: Preprocessor(config).process_recording(
            session.emg, session.acc, session.gyro, session.emg_first_index, session.imu_first_index)
            for number, session in enumerate(sessions)}
        cut = window_set.windows()
        worst = 0.0
        for row, identifier in enumerate(window_set.ids.tolist()):
            entry = dataset.entry(identifier)
            block = whole[int(entry.file.split("-")[1])]
            annotation = dataset.sign(entry)
            end = sample_index_at(annotation.end_index / dataset.emg_rate_hz, config.preprocess.model_rate_hz) + plan.end_offset
            start = end - plan.window_samples - block.first_index
            for name in ("emg", "acc", "gyro"):
                expected = getattr(block, name)[start:start + plan.window_samples]
                scale = np.abs(expected).max() + 1e-6
                worst = max(worst, float(np.abs(cut[name][row] - expected).max() / scale))
        assert worst < 1e-3, worst
    from train.summary import summarize

    scan = summarize(str(tmp_path), scan=True)["scan"]  # each recording's samples counted once
    assert scan["gaps"] == 3 * sum(len(session.gaps) for session in sessions)
    lengths = [(a.end_index - a.start_index) / float(sessions[0].emg_rate_hz) for s in sessions for a in s.annotations]
    assert scan["sign_duration_s"]["max"] == pytest.approx(max(lengths), abs=1e-3)
    # A guided recording whose index entry no longer matches the file is refused, not mislabelled.
    index = json.loads((tmp_path / "index.json").read_text())
    index["entries"][0]["annotation"] = 10**6
    (tmp_path / "index.json").write_text(json.dumps(index))
    with open_dataset(tmp_path) as dataset, pytest.raises(DatasetError, match="index it again"):
        dataset.load(dataset.entries[0])
