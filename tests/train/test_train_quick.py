"""Training data for distillation (windows through the Preprocessor) and, marked slow, the whole
``python -m train.distill --quick`` run end to end with sane card figures."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from stream.config import config_from_dict
from stream.dsp.preprocess import Preprocessor
from stream.dsp.windows import extract_window
from stream.recording.dataset import open_dataset
from stream.wire.rates import sample_index_at
from train.distill.data import TrainingDataError, build_window_set, check_balance, plan_from_config


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    from train.synth.build import generate_dataset

    directory = tmp_path_factory.mktemp("dataset")
    generate_dataset(directory, signers=2, repetitions=3, seed=5, sessions=0, workers=1, progress=False)
    return directory


@pytest.fixture(scope="module")
def windows(small_dataset):
    config = config_from_dict({})
    dataset = open_dataset(small_dataset)
    entries = dataset.isolated()[::7]
    return dataset, entries, config, build_window_set(dataset, entries, config, plan_from_config(config))


def test_windows_are_the_preprocessor_s_windows_ending_after_the_sign(windows):
    dataset, entries, config, window_set = windows
    plan = plan_from_config(config)
    inputs = window_set.windows()
    assert {name: array.shape[1:] for name, array in inputs.items()} == {"emg": (148, 6), "acc": (148, 18), "gyro": (148, 18)}
    row_of = {identifier: row for row, identifier in enumerate(window_set.ids.tolist())}
    compared = padded_checked = 0
    for entry in entries:
        if entry.id not in row_of:
            continue
        row = row_of[entry.id]
        recording = dataset.load(entry)
        block = Preprocessor(config).process_recording(recording.emg, recording.acc, recording.gyro,
                                                       recording.emg_first_index, recording.imu_first_index)
        annotation = recording.annotations[0]
        end = min(block.end_index, sample_index_at(annotation.end_index / recording.emg_rate_hz,
                                                   config.preprocess.model_rate_hz) + plan.end_offset)
        assert window_set.labels[row] == dataset.label_index(entry.label)
        if window_set.padded[row] == 0:
            expected = extract_window(block, end, 148)
            for name in ("emg", "acc", "gyro"):
                np.testing.assert_array_equal(inputs[name][row], getattr(expected, name))
            compared += 1
        else:
            # The real part is the Preprocessor's output; the padding is the rest before the sign, mirrored.
            padding = int(window_set.padded[row])
            real = inputs["emg"][row][padding:]
            np.testing.assert_array_equal(real, block.emg[:148 - padding])
            np.testing.assert_array_equal(inputs["emg"][row][padding - 1], block.emg[0])
            padded_checked += 1
    assert compared + padded_checked >= 5


def test_jittered_ends_stay_in_range_and_vary(windows):
    _, _, _, window_set = windows
    rng = np.random.default_rng(0)
    rows = np.arange(len(window_set))
    ends = np.stack([window_set.jittered_ends(rows, rng) for _ in range(20)])
    assert (ends >= window_set.lowest_end).all() and (ends <= window_set.highest_end).all()
    assert (ends.std(axis=0) > 0).mean() > 0.9
    assert ((window_set.lowest_end <= window_set.anchor) & (window_set.anchor <= window_set.highest_end)).all()


def test_missing_and_unbalanced_labels_are_clear_errors():
    names = ["a", "b", "c"]
    with pytest.raises(TrainingDataError, match="no recordings of 1 label.*c"):
        check_balance(np.array([0, 1, 0, 1]), names, "train")
    with pytest.raises(TrainingDataError, match="unbalanced.*'a' has 8"):
        check_balance(np.array([0] * 8 + [1, 1, 2, 2]), names, "train")
    check_balance(np.array([0, 0, 1, 2, 2, 1]), names, "train")


def test_an_empty_dataset_directory_exits_2_with_a_message(tmp_path, capsys):
    from train.distill.__main__ import main

    (tmp_path / "empty").mkdir()
    assert main(["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "out"), "--quick"]) == 2
    assert "empty directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("alphas, message", [("1.5", "each must lie in [0, 1]"), ("0.9,", None),
                                             ("0.9,heavy", "comma-separated numbers")])
def test_alpha_lists_are_checked_before_any_training(tmp_path, capsys, alphas, message):
    from train.distill.__main__ import build_parser, main

    if message is None:  # a trailing comma is harmless
        assert build_parser().parse_args(["--data", "d", "--out", "o", "--alpha", alphas]).alpha == [0.9]
        return
    with pytest.raises(SystemExit) as raised:
        main(["--data", str(tmp_path), "--out", str(tmp_path / "out"), "--alpha", alphas])
    assert raised.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)  # the --quick run itself is given 900 s below; the suite's 300 s default is too short
def test_quick_training_end_to_end(small_dataset, tmp_path):
    from stream.stages.classifier import Classifier

    out = tmp_path / "student"
    completed = subprocess.run([sys.executable, "-m", "train.distill", "--data", str(small_dataset), "--out", str(out),
                                "--quick", "--seed", "1", "--alpha", "0.9,0.3"], capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    card = json.loads((out / "model_card.json").read_text())
    summary, sizes, exported = card["metrics"]["summary"], card["metrics"]["sizes_bytes"], card["metrics"]["exported"]
    for name in ("teacher_emg", "teacher_acc", "teacher_gyro", "teacher_ensemble", "student_scratch",
                 "student_kd_single", "student_kd_mean", "student_kd_weighted"):
        for part in ("val", "test"):
            assert 0.0 <= summary[name][part]["accuracy"] <= 1.0 and 0.0 <= summary[name][part]["macro_f1"] <= 1.0
    assert len(card["labels"]) == 50 and card["parameters"]["teacher_ensemble"] > 3 * card["parameters"]["student"]
    # Each distilled student was trained at every alpha asked for; the kept one is the best on validation.
    training = card["training"]
    for name in ("student_kd_single", "student_kd_mean", "student_kd_weighted"):
        candidates = training["alpha_candidates"][name]
        assert [row["alpha"] for row in candidates] == [0.9, 0.3]
        best = max(candidates, key=lambda row: row["val"])  # max keeps the first of equals, as the trainer does
        assert training["alpha_chosen"][name] == best["alpha"] and summary[name]["val"]["accuracy"] == best["val"]
    assert training["alpha_chosen"]["student_scratch"] is None
    assert "| student_kd_mean | 0.3 |" in (out / "report.md").read_text()
    assert sizes["student_dynamic_range"] < sizes["student_float32"] < sizes["teacher_ensemble_float32"] / 3
    assert exported["float32"]["agreement_with_keras_pct"] >= 99.0
    assert exported["float32"]["lstm_ops"]["WHILE"] == 0
    assert 0 < exported["float32"]["latency_single_thread"]["median_ms"] < 50
    for name in ("report.md", "learning_curves.png", "confusion_matrix.png", "ablation.png", "results.json"):
        assert (out / name).stat().st_size > 0
    assert not [path.name for path in out.iterdir() if path.name.endswith(".partial")]
    # The shipped student's Keras weights, named with their sha256, rebuild it for train.adapt.finetune.
    from train.adapt.finetune import load_student, probabilities as keras_probabilities

    weights = training["keras_weights"]
    assert (out / weights["file"]).stat().st_size > 0 and not list(out.glob("*.partial.*"))
    rebuilt = load_student(out / "model_card.json", card)
    zeros = {"emg": np.zeros((2, 148, 6), np.float32), "acc": np.zeros((2, 148, 18), np.float32),
             "gyro": np.zeros((2, 148, 18), np.float32)}
    np.testing.assert_allclose(keras_probabilities(rebuilt, zeros).sum(axis=1), 1.0, atol=1e-5)
    config = config_from_dict({"model": {"card": str(out / "model_card.json")}})
    classifier = Classifier.from_config(config)
    probabilities = classifier.predict_batch(np.zeros((2, 148, 6), np.float32), np.zeros((2, 148, 18), np.float32),
                                             np.zeros((2, 148, 18), np.float32))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_an_interrupted_write_leaves_the_old_file_and_no_partial(tmp_path, monkeypatch):
    import os
    from types import SimpleNamespace

    from stream.common import atomic

    target = tmp_path / "student_float32.tflite"
    target.write_bytes(b"old model")

    def interrupted(source, destination):
        raise KeyboardInterrupt  # Ctrl-C between writing the temporary file and renaming it

    # Only the module's view of os changes (patching os.replace itself would hit pytest too).
    monkeypatch.setattr(atomic, "os", SimpleNamespace(fdopen=os.fdopen, fsync=os.fsync, chmod=os.chmod, replace=interrupted))
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write_bytes(target, b"new model, half written")
    assert target.read_bytes() == b"old model"
    assert [path.name for path in tmp_path.iterdir()] == ["student_float32.tflite"]
    monkeypatch.setattr(atomic, "os", os)
    atomic.atomic_write_bytes(target, b"new model")
    assert target.read_bytes() == b"new model"


def test_the_shipped_student_is_the_best_on_validation_and_ties_go_to_a_distilled_one():
    from train.distill.__main__ import choose_shipped

    def measured(scratch, single, mean, weighted):
        return {name: {"val": {"accuracy": value}, "test": {"accuracy": 1.0 - value}}
                for name, value in (("student_scratch", scratch), ("student_kd_single", single),
                                    ("student_kd_mean", mean), ("student_kd_weighted", weighted))}

    assert choose_shipped(measured(0.96, 0.87, 0.93, 0.94), "best") == "student_scratch"
    assert choose_shipped(measured(0.96, 0.87, 0.93, 0.94), "kd") == "student_kd_weighted"
    assert choose_shipped(measured(0.95, 0.87, 0.95, 0.95), "best") == "student_kd_mean"
    assert choose_shipped(measured(0.95, 0.87, 0.94, 0.95), "best") == "student_kd_weighted"
