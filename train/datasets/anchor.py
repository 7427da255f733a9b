"""A feature anchor for lis-myo: hand-made features + multinomial logistic regression, in numpy.

It checks the reader against the figure in /work/shared/NOTES.md ("Real data": with scikit-learn,
stratified 70/30 over 5 seeds, sEMG 92.6%, acc 71.6%, gyro 80.7%, orientation 69.3%, sEMG + acc +
gyro 95.6%, all four 96.2%). A reader that shuffled channels, letters or IMU fields would miss it.

Features, over four equal quarters of each sample's window:
- sEMG: per channel, the RMS and the mean absolute difference of consecutive samples (64 features);
- acc, gyro, orientation: the per-axis mean (12, 12 and 16 features).

Classifier: features standardised with the training set's mean and SD; multinomial logistic regression
minimising sum of cross-entropies + ||W||^2 / (2 C) (C = 1, intercepts not penalised; scikit-learn's
default objective), fitted with scipy's L-BFGS to convergence.

Splits: ``stratified`` holds out round(30%) of each letter (8 of 27) at random, one split per seed;
``by time`` holds out the latest 30% of each letter's samples (by timestamp), training on the earlier
ones. A split by recording session is reported as not measurable when sessions partition the letters
(in this copy every letter was recorded in one sitting only).

    python -m train.datasets.anchor /path/to/lis-myo [--imu native|declared] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

if "numpy" not in sys.modules:
    # Run as a command: the matrices are small (500 x 112 x 26), and on two shared cores OpenBLAS's
    # threads made the report take 10-21 s instead of 4.5 s. An importer that already has numpy keeps
    # its own setting.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from scipy.optimize import minimize

from train.datasets.lis_myo import IMU_MODES, LisMyoSample, read_lis_myo

QUARTERS = 4
MODALITIES = {
    "emg": ("emg",),
    "acc": ("acc",),
    "gyro": ("gyro",),
    "orientation": ("orientation",),
    "emg+acc+gyro": ("emg", "acc", "gyro"),
    "all": ("emg", "acc", "gyro", "orientation"),
}


def _quarters(array: np.ndarray) -> list[np.ndarray]:
    return np.array_split(array, QUARTERS, axis=0)


def emg_features(emg: np.ndarray) -> np.ndarray:
    """RMS and mean absolute difference per channel and quarter: (8 x 4 x 2,)."""
    parts = []
    for quarter in _quarters(np.asarray(emg, dtype=np.float64)):
        parts.append(np.sqrt(np.mean(quarter ** 2, axis=0)))
        parts.append(np.mean(np.abs(np.diff(quarter, axis=0)), axis=0))
    return np.concatenate(parts)


def mean_features(values: np.ndarray) -> np.ndarray:
    """Per-axis mean per quarter: (axes x 4,)."""
    return np.concatenate([quarter.mean(axis=0) for quarter in _quarters(np.asarray(values, dtype=np.float64))])


def feature_blocks(samples: list[LisMyoSample]) -> dict[str, np.ndarray]:
    """{modality: (samples, features)} for emg, acc, gyro and orientation."""
    return {
        "emg": np.stack([emg_features(sample.emg) for sample in samples]),
        "acc": np.stack([mean_features(sample.acc) for sample in samples]),
        "gyro": np.stack([mean_features(sample.gyro) for sample in samples]),
        "orientation": np.stack([mean_features(sample.orientation) for sample in samples]),
    }


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(logits)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


class LogisticRegression:
    """Multinomial logistic regression with L2 (see the module docstring); ``fit`` then ``predict``."""

    def __init__(self, c: float = 1.0, max_iterations: int = 2000):
        self.c = c
        self.max_iterations = max_iterations

    def fit(self, features: np.ndarray, labels: np.ndarray) -> "LogisticRegression":
        self.classes_, targets = np.unique(labels, return_inverse=True)
        self.mean_ = features.mean(axis=0)
        self.scale_ = features.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        x = (features - self.mean_) / self.scale_
        count, width = x.shape
        classes = len(self.classes_)
        one_hot = np.zeros((count, classes))
        one_hot[np.arange(count), targets] = 1.0

        def objective(flat: np.ndarray):
            weights, bias = flat[: width * classes].reshape(width, classes), flat[width * classes:]
            logits = x @ weights + bias
            shifted = logits - logits.max(axis=1, keepdims=True)
            log_normaliser = np.log(np.exp(shifted).sum(axis=1))
            loss = -(shifted * one_hot).sum() + log_normaliser.sum() + (weights ** 2).sum() / (2 * self.c)
            error = _softmax(logits) - one_hot
            gradient = np.concatenate(((x.T @ error + weights / self.c).ravel(), error.sum(axis=0)))
            return loss, gradient

        result = minimize(objective, np.zeros(width * classes + classes), jac=True, method="L-BFGS-B",
                          options={"maxiter": self.max_iterations, "gtol": 1e-6})
        self.weights_ = result.x[: width * classes].reshape(width, classes)
        self.bias_ = result.x[width * classes:]
        self.converged_ = bool(result.success)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        logits = ((features - self.mean_) / self.scale_) @ self.weights_ + self.bias_
        return self.classes_[np.argmax(logits, axis=1)]


def stratified_split(labels: np.ndarray, seed: int, test_fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): round(test_fraction * n) of each label, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held = int(round(test_fraction * len(members)))
        test.extend(members[:held])
        train.extend(members[held:])
    return np.sort(train), np.sort(test)


def time_split(samples: list[LisMyoSample], test_fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: each letter's latest round(test_fraction * n) samples are the test set."""
    by_letter = defaultdict(list)
    for index, sample in enumerate(samples):
        by_letter[sample.letter].append(index)
    train, test = [], []
    for members in by_letter.values():
        members = sorted(members, key=lambda index: samples[index].timestamp)
        held = int(round(test_fraction * len(members)))
        train.extend(members[: len(members) - held])
        test.extend(members[len(members) - held:])
    return np.sort(train), np.sort(test)


def accuracy(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    model = LogisticRegression().fit(features[train], labels[train])
    return float(np.mean(model.predict(features[test]) == labels[test]))


def anchor_report(samples: list[LisMyoSample], seeds: int = 5) -> dict:
    """Accuracies per modality: stratified (mean and SD over seeds), by time, and by session if possible."""
    labels = np.array([sample.letter for sample in samples])
    blocks = feature_blocks(samples)
    features = {name: np.hstack([blocks[part] for part in parts]) for name, parts in MODALITIES.items()}
    splits = [stratified_split(labels, seed) for seed in range(seeds)]
    report: dict = {"samples": len(samples), "letters": int(len(np.unique(labels))), "seeds": seeds,
                    "test_per_split": int(len(splits[0][1])), "stratified": {}, "stratified_sd": {}, "by_time": {}}
    for name, matrix in features.items():
        scores = [accuracy(matrix, labels, train, test) for train, test in splits]
        report["stratified"][name] = round(float(np.mean(scores)), 4)
        report["stratified_sd"][name] = round(float(np.std(scores)), 4)
    train, test = time_split(samples)
    for name, matrix in features.items():
        report["by_time"][name] = round(accuracy(matrix, labels, train, test), 4)
    letters_by_session = defaultdict(set)
    for sample in samples:
        letters_by_session[sample.session].add(sample.letter)
    sessions = sorted(letters_by_session)
    shared = set.intersection(*letters_by_session.values()) if len(sessions) > 1 else set()
    report["sessions"] = {session: "".join(sorted(letters)) for session, letters in sorted(letters_by_session.items())}
    if len(sessions) < 2 or not shared:
        report["by_session"] = ("not measurable: the sessions share no letter, so a model trained on one session "
                                "has never seen the other's letters")
    else:
        report["by_session"] = {}
        for held in sessions:
            keep = np.array([sample.letter in shared for sample in samples])
            test = np.flatnonzero(keep & np.array([sample.session == held for sample in samples]))
            train = np.flatnonzero(keep & np.array([sample.session != held for sample in samples]))
            report["by_session"][held] = round(accuracy(features["all"], labels, train, test), 4)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the lis-myo folder (Dataset/<letter>/<guid>.json) or its .tar.xz")
    parser.add_argument("--imu", choices=IMU_MODES, default="native")
    parser.add_argument("--seeds", type=int, default=5)
    arguments = parser.parse_args(argv)
    samples = read_lis_myo(arguments.source, imu=arguments.imu)
    report = anchor_report(samples, seeds=arguments.seeds)
    report["imu"] = arguments.imu
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
