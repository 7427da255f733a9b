"""python -m train.adapt.evaluate: accuracy against k for each on-device method, calibration rounds
drawn at random and never tested on (a tiny real TFLite model on a small synthetic data set)."""

from __future__ import annotations

import json

import pytest

from daemon_helpers import tiny_model_card
from stream.synth.vocabulary import LABELS
from train.adapt.evaluate import main
from train.synth.build import generate_dataset


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    directory = tmp_path_factory.mktemp("adapt")
    generate_dataset(directory / "data", signers=2, repetitions=4, seed=5, sessions=0, workers=1, progress=False)
    return directory / "data", tiny_model_card(directory / "model", labels=LABELS, features=True)


def test_accuracy_against_k_for_every_method_and_signer(small, tmp_path, capsys):
    data, card = small
    out = tmp_path / "report.json"
    assert main(["--model", str(card), "--data", str(data), "--k", "0,1,2", "--draws", "2", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(out.read_text())
    assert set(report["signers"]) == {"signer-01", "signer-02"}
    for result in report["signers"].values():
        assert result["rounds"] == 4
        assert set(result["by_k"]["0"]["accuracy"]) == {"none"}
        for k in ("1", "2"):
            entry = result["by_k"][k]
            assert set(entry["accuracy"]) == {"none", "alignment", "head", "alignment+head"}
            assert all(0.0 <= value <= 1.0 for value in entry["accuracy"].values())
            assert all(value >= 0.0 for value in entry["seconds"].values()) and entry["draws"] == 2
    # An untrained model is at chance (1 in 50) as it is; a head fitted on two rounds learns the rest.
    assert report["mean"]["0"]["none"] < 0.1
    assert report["mean"]["2"]["head"] > report["mean"]["0"]["none"] + 0.2


def test_bad_requests_are_one_line_errors(small, capsys):
    data, card = small
    assert main(["--model", str(card), "--data", str(data), "--k", "4"]) == 2
    assert "one must stay for testing" in capsys.readouterr().err
    assert main(["--model", str(card), "--data", str(data), "--methods", "magic"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(["--model", str(card), "--data", str(data), "--signer", "signer-09"]) == 2
    assert "no isolated recordings" in capsys.readouterr().err


def test_statistics_are_added_to_a_card_without_them(small, tmp_path):
    from train.adapt.statistics import main as statistics_main

    data, card = small
    document = json.loads(card.read_text())
    document.pop("input_statistics")
    target = tmp_path / "model_card.json"
    target.write_text(json.dumps(document))
    assert statistics_main(["--model", str(target), "--data", str(data)]) == 0
    statistics = json.loads(target.read_text())["input_statistics"]
    assert {name: len(value["mean"]) for name, value in statistics.items()} == {"emg": 6, "acc": 18, "gyro": 18}
    assert all(min(value["std"]) > 0 for value in statistics.values())
    assert statistics_main(["--model", str(target), "--data", str(data), "--protocol", "loso",
                            "--held-out-signer", "signer-02"]) == 0
    assert statistics_main(["--model", str(target), "--data", str(data), "--protocol", "loso",
                            "--held-out-signer", "nobody"]) == 2
