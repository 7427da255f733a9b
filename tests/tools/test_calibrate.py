"""stream-calibrate from a guided recording of the simulated signer: windows cut where the segmenter
finds each prompted sign, the adapted card written complete or not at all, what to repeat named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from daemon_helpers import tiny_model_card
from stream.daemons.record import guided_plan
from stream.recording import write_recording
from stream.synth.session import guided_recording
from stream.synth.signer import make_signer
from stream.tools.calibrate import calibration_windows, main
from stream.wire.rates import EMG_RATE_HZ

SIGNS = ("hello", "thank_you", "water", "home")


@pytest.fixture(scope="module")
def guided(tmp_path_factory):
    directory = tmp_path_factory.mktemp("calibration")
    prompts = guided_plan(list(SIGNS), 2, 2.0, 2.0, EMG_RATE_HZ, seed=0)
    recording = guided_recording(0, make_signer(3, 0), prompts)
    path = write_recording(directory / "me.h5", recording)
    card = tiny_model_card(directory / "base", labels=SIGNS, features=True)
    return path, recording, card


def test_each_prompted_sign_gives_the_window_stream_infer_would_classify(guided):
    from stream.config import Config

    _, recording, _ = guided
    calibration = calibration_windows(recording, Config())
    assert calibration.problems == []
    signs = calibration.signs
    assert sorted(np.array(calibration.labels)[signs]) == sorted(SIGNS * 2) and sorted(set(calibration.rounds)) == [0, 1]
    assert calibration.windows["emg"].shape[1:] == (148, 6) and np.isfinite(calibration.windows["emg"]).all()
    # Each sign also as windows ending 0.1 s before and 0.1 / 0.2 s after (7 and 15 model samples at
    # 2000/27 Hz): the same samples, moved.
    assert sorted(set(calibration.shifts)) == [-7, 0, 7, 15] and len(calibration.shifts) == 8 * 4
    alone = calibration_windows(recording, Config(), shifts_s=())
    assert alone.shifts == [0] * 8
    np.testing.assert_array_equal(alone.windows["emg"], calibration.windows["emg"][signs])
    rows = np.flatnonzero(signs)
    later = [row + 2 for row in rows]  # rows go 0, -7, 7, 15 per sign: +2 is the window 7 samples later
    assert all(calibration.shifts[row] == 7 for row in later)
    np.testing.assert_array_equal(calibration.windows["emg"][later][:, :-7], calibration.windows["emg"][rows][:, 7:])


def test_calibrate_writes_a_complete_card_the_classifier_runs(guided, tmp_path, capsys):
    from stream.adapt.card import sha256_file
    from stream.config import Config
    from stream.stages.classifier import Classifier

    path, _, card = guided
    out = tmp_path / "me"
    assert main(["--user", "me", "--out", str(out), "--signs", ",".join(SIGNS), "--model", str(card),
                 "--from", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[0])
    document = json.loads((out / "model_card.json").read_text())
    adaptation = document["adaptation"]
    assert summary["model_id"] == document["model_id"] and document["model_id"].startswith(adaptation["base_model_id"])
    assert adaptation["k"] == 2 and adaptation["windows"] == 8 and adaptation["method"] == "alignment+head"
    assert adaptation["windows_with_shifts"] == 32 and adaptation["shifts_samples"] == [-7, 0, 7, 15]
    assert adaptation["calibration"][0]["sha256"] == sha256_file(path)
    assert 0.0 <= adaptation["cross_validated_accuracy"] <= 1.0 and adaptation["seconds"] >= 0
    assert adaptation["model_seconds"] >= 0 and adaptation["fit_seconds"] >= 0
    assert abs(adaptation["model_seconds"] + adaptation["fit_seconds"] - adaptation["seconds"]) < 1e-9
    classifier = Classifier.from_config(Config(model=type(Config().model)(card=str(out / "model_card.json"))))
    assert classifier.adaptation.head is not None and classifier.adaptation.alignment is not None


def test_a_sign_never_made_is_named_and_nothing_is_written(guided, tmp_path, capsys):
    path, _, card = guided
    out = tmp_path / "missing"
    assert main(["--user", "me", "--out", str(out), "--signs", "hello,thank_you,water,home,yes", "--model", str(card),
                 "--from", str(path)]) == 1
    error = capsys.readouterr().err
    assert "yes" in error and "not the model's labels" in error and not (out / "model_card.json").exists()
    # A sign of the model that the session never prompted: what to record again.
    only = tmp_path / "only"
    prompts = guided_plan(["hello", "water"], 2, 2.0, 2.0, EMG_RATE_HZ, seed=1)
    partial = write_recording(tmp_path / "partial.h5", guided_recording(0, make_signer(3, 0), prompts, session=1))
    assert main(["--user", "me", "--out", str(only), "--signs", ",".join(SIGNS), "--model", str(card),
                 "--from", str(partial)]) == 1
    error = capsys.readouterr().err
    assert "no usable repetition of thank_you, home" in error and "--from" in error
    assert not (only / "model_card.json").exists()


def test_a_card_is_never_overwritten(guided, tmp_path, capsys):
    path, _, card = guided
    out = tmp_path / "twice"
    arguments = ["--user", "me", "--out", str(out), "--signs", ",".join(SIGNS), "--model", str(card), "--from", str(path)]
    assert main(arguments) == 0
    before = (out / "model_card.json").read_bytes()
    assert main(arguments) == 1
    assert "already holds a model card" in capsys.readouterr().err
    assert (out / "model_card.json").read_bytes() == before


def test_the_head_alone_reports_its_figures_on_the_signs_windows(guided, tmp_path, capsys):
    path, _, card = guided
    out = tmp_path / "head"
    assert main(["--user", "me", "--out", str(out), "--signs", ",".join(SIGNS), "--model", str(card),
                 "--from", str(path), "--method", "head"]) == 0
    adaptation = json.loads((out / "model_card.json").read_text())["adaptation"]
    assert adaptation["method"] == "head" and adaptation["windows"] == 8 and adaptation["windows_with_shifts"] == 32
    assert adaptation["base_accuracy_on_calibration"] == adaptation["aligned_accuracy_on_calibration"]
