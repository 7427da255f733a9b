"""The lis-myo feature anchor: features, the numpy logistic regression, splits, and the real figures."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest

from train.datasets.anchor import (
    LogisticRegression,
    accuracy,
    anchor_report,
    emg_features,
    feature_blocks,
    main,
    mean_features,
    stratified_split,
    time_split,
)

from real_data import LIS_MYO_ARCHIVE as ARCHIVE
from real_data import needs_lis_myo as needs_data


def test_features_by_quarter():
    emg = np.zeros((400, 8))
    emg[:100, 0] = np.tile([3.0, -3.0], 50)  # first quarter of channel 0: RMS 3, mean |diff| 6
    features = emg_features(emg)
    assert features.shape == (64,)
    assert features[0] == pytest.approx(3.0) and features[8] == pytest.approx(6.0)
    assert np.count_nonzero(features) == 2
    values = np.repeat(np.arange(4.0), 75)[:, None] * np.ones((1, 3))  # quarter k holds k
    np.testing.assert_allclose(mean_features(values), np.repeat(np.arange(4.0), 3))


def test_logistic_regression_learns_separable_classes():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (4, 6))
    labels = np.repeat(np.array(list("WXYZ")), 50)
    features = centres[np.repeat(np.arange(4), 50)] + rng.normal(0, 1, (200, 6))
    train, test = stratified_split(labels, seed=0)
    model = LogisticRegression().fit(features[train], labels[train])
    assert model.converged_ and np.mean(model.predict(features[test]) == labels[test]) > 0.95
    assert accuracy(features, labels, train, test) > 0.95


def test_splits():
    labels = np.repeat(np.array(list("AB")), 27)
    train, test = stratified_split(labels, seed=3)
    assert len(test) == 16 and sum(labels[test] == "A") == 8 and not set(train) & set(test)
    assert len(train) + len(test) == 54

    class Sample:
        def __init__(self, letter, minute):
            self.letter, self.timestamp = letter, datetime(2020, 1, 1) + timedelta(minutes=minute)

    samples = [Sample("A", minute) for minute in (5, 1, 9, 3, 7, 2, 8, 4, 6, 0)]
    train, test = time_split(samples)
    assert sorted(samples[index].timestamp.minute for index in test) == [7, 8, 9]


@needs_data
def test_real_features_recognise_letters_on_one_split(real_samples):
    labels = np.array([sample.letter for sample in real_samples])
    blocks = feature_blocks(real_samples)
    assert blocks["emg"].shape == (702, 64) and blocks["orientation"].shape == (702, 16)
    train, test = stratified_split(labels, seed=0)
    # Measured on this split: 0.990 (the 5-split mean is 0.980). A reader that mixed up letters,
    # channels or IMU fields would not get within 5 points of it.
    assert accuracy(np.hstack([blocks["emg"], blocks["acc"], blocks["gyro"]]), labels, train, test) > 0.94


@needs_data
@pytest.mark.slow
def test_real_anchor_report(real_samples, capsys):
    assert main([str(ARCHIVE)]) == 0
    report = json.loads(capsys.readouterr().out)
    # NOTES.md (full 780 samples, scikit-learn): sEMG 92.6, sEMG+acc+gyro 95.6. This copy (702, each letter
    # recorded in one sitting) measures 95.7 and 98.0; scikit-learn on the same features and splits agrees.
    assert report["stratified"]["emg"] == pytest.approx(0.957, abs=0.01)
    assert report["stratified"]["emg+acc+gyro"] == pytest.approx(0.980, abs=0.01)
    assert report["by_session"].startswith("not measurable")
    assert report["sessions"] == {"2020-06-26/1": "ABCDEFGHIJKLMNOPQR", "2020-06-27/1": "STUVWX", "2020-06-27/2": "YZ"}
    assert report["by_time"]["emg+acc+gyro"] > 0.95


def test_session_split_is_measured_when_sessions_share_letters():
    rng = np.random.default_rng(1)

    class Sample:
        pass

    samples = []
    for session in ("d/1", "d/2"):
        for letter_number, letter in enumerate("ABC"):
            for repeat in range(10):
                sample = Sample()
                sample.letter, sample.session = letter, session
                sample.timestamp = datetime(2020, 1, 1) + timedelta(minutes=len(samples))
                sample.emg = rng.normal(letter_number * 3, 1, (400, 8))
                sample.acc, sample.gyro = rng.normal(0, 1, (300, 3)), rng.normal(0, 1, (300, 3))
                sample.orientation = rng.normal(0, 1, (300, 4))
                samples.append(sample)
    report = anchor_report(samples, seeds=1)
    assert set(report["by_session"]) == {"d/1", "d/2"} and min(report["by_session"].values()) > 0.9
