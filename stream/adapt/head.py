"""A new user's correction of the student's decision, fitted on the device (numpy + scipy, no TensorFlow).

The student gives, for each window, class probabilities ``p`` and its penultimate features ``f`` (the
concatenated branch outputs, the input of its head; exported as the model's second output). The
adapted decision is

    logits = log p + f @ weights + bias

a residual on the base model's own logits (``log p`` equals them up to a constant per window, which
softmax ignores), fitted by L2-regularised multinomial logistic regression on the user's calibration
windows. With ``weights = bias = 0`` it is the base model exactly, and the penalty pulls towards it:
with two repetitions per sign there are far fewer windows than weights, and a head refitted from
scratch would forget what the base model knows about signs the user made less clearly.

Fitting: L-BFGS on the mean cross-entropy plus ``l2 / 2 * |weights|^2`` over standardised features
(so one penalty suits every feature's scale); the standardisation is folded back into ``weights``
and ``bias``. ``choose_l2`` picks the penalty by leave-one-repetition-out cross-validation;
``fit_user_head`` does both, as stream-calibrate and train.adapt.evaluate use it.

Every fit runs on one BLAS thread: the matrices are small (a few hundred windows x a few hundred
features), and with more threads OpenBLAS spends its time spinning: 5x the CPU and 3x the wall time
for the same result (measured, docs/RESULTS.md), CPU that stream-infer beside it needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Down to 1e-4: on people the model never saw, cross-validation kept choosing the weakest penalty
# of (0.01 .. 1.0), and the lower ones gave 1-2.5 points more at k = 2 (docs/RESULTS.md).
L2_CHOICES = (1e-4, 3e-4, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
SINGLE_ROUND_L2 = 0.001  # one round: nothing to cross-validate on; the best at k = 1 on every person measured


class AdaptationError(ValueError):
    """Calibration data that cannot be used; the message says what to repeat or fix."""


@dataclass(frozen=True)
class Head:
    """The fitted correction: ``logits = log p + features @ weights + bias``."""

    weights: np.ndarray  # (features, classes) float32
    bias: np.ndarray  # (classes,) float32
    l2: float

    def apply(self, probabilities: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Adapted probabilities for (n, classes) base probabilities and (n, features) features (or one row each)."""
        logits = _log(probabilities) + features @ self.weights + self.bias
        return _softmax(logits).astype(np.float32)

    @classmethod
    def identity(cls, features: int, classes: int) -> Head:
        return cls(np.zeros((features, classes), np.float32), np.zeros(classes, np.float32), 0.0)


def _log(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def _check(probabilities, features, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if probabilities.ndim != 2 or features.ndim != 2 or labels.ndim != 1:
        raise AdaptationError(f"expected (n, classes) probabilities, (n, features) features and (n,) labels; got "
                              f"{probabilities.shape}, {features.shape}, {labels.shape}")
    if not len(probabilities) == len(features) == len(labels) or len(labels) == 0:
        raise AdaptationError(f"{len(probabilities)} probability rows, {len(features)} feature rows and {len(labels)} "
                              "labels: one of each per calibration window, at least one window")
    if not (np.isfinite(probabilities).all() and np.isfinite(features).all()):
        raise AdaptationError("calibration windows with non-finite model outputs; record the calibration again")
    if labels.min() < 0 or labels.max() >= probabilities.shape[1]:
        raise AdaptationError(f"labels must be class indices 0..{probabilities.shape[1] - 1}")
    return probabilities, features, labels.astype(np.int64)


class _Problem:
    """One set of calibration windows, standardised once, to fit at several penalties (each fit may
    start from another's solution: the problem is convex, so only the iterations change)."""

    def __init__(self, probabilities, features, labels):
        probabilities, features, labels = _check(probabilities, features, labels)
        self.count, self.classes = probabilities.shape
        self.width = features.shape[1]
        self.mean = features.mean(axis=0)
        self.scale = features.std(axis=0)
        self.scale[self.scale < 1e-6] = 1.0
        self.standard = (features - self.mean) / self.scale
        self.offsets = _log(probabilities)
        self.targets = np.zeros((self.count, self.classes))
        self.targets[np.arange(self.count), labels] = 1.0

    def solve(self, l2: float, start: np.ndarray | None = None, max_iterations: int = 200) -> np.ndarray:
        from scipy.optimize import minimize

        width, classes, count = self.width, self.classes, self.count

        def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
            weights = flat[:width * classes].reshape(width, classes)
            bias = flat[width * classes:]
            logits = self.offsets + self.standard @ weights + bias
            logits -= logits.max(axis=1, keepdims=True)
            log_normaliser = np.log(np.exp(logits).sum(axis=1, keepdims=True))
            log_probabilities = logits - log_normaliser
            loss = -np.sum(self.targets * log_probabilities) / count + 0.5 * l2 * np.sum(weights * weights)
            error = (np.exp(log_probabilities) - self.targets) / count
            gradient_weights = self.standard.T @ error + l2 * weights
            return float(loss), np.concatenate([gradient_weights.ravel(), error.sum(axis=0)])

        first = np.zeros(width * classes + classes) if start is None else start
        return minimize(loss_and_gradient, first, jac=True, method="L-BFGS-B", options={"maxiter": max_iterations}).x

    def head(self, flat: np.ndarray, l2: float) -> Head:
        weights = flat[:self.width * self.classes].reshape(self.width, self.classes)
        bias = flat[self.width * self.classes:]
        # Fold the standardisation back in: standard @ W = features @ (W / scale) - mean / scale @ W.
        folded = weights / self.scale[:, None]
        return Head(folded.astype(np.float32), (bias - (self.mean / self.scale) @ weights).astype(np.float32), float(l2))


def fit_head(probabilities, features, labels, l2: float = 1.0, max_iterations: int = 200) -> Head:
    """The correction for these calibration windows (``labels`` are class indices)."""
    problem = _Problem(probabilities, features, labels)
    return problem.head(problem.solve(l2, max_iterations=max_iterations), l2)


def _cross_validated_scores(probabilities, features, labels, groups, choices) -> dict:
    """Penalty -> accuracy on each group (a repetition round) when fitted on the others. Per held-out
    group the penalties are fitted strongest first, each from the previous solution."""
    probabilities, features, labels = _check(probabilities, features, labels)
    groups = np.asarray(groups)
    distinct = np.unique(groups)
    if len(distinct) < 2:
        base = float(np.mean(probabilities.argmax(axis=1) == labels))
        return {l2: base for l2 in choices}
    correct = {l2: 0 for l2 in choices}
    for group in distinct:
        held = groups == group
        problem = _Problem(probabilities[~held], features[~held], labels[~held])
        solution = None
        for l2 in sorted(choices, reverse=True):
            solution = problem.solve(l2, solution)
            predicted = problem.head(solution, l2).apply(probabilities[held], features[held]).argmax(axis=1)
            correct[l2] += int(np.sum(predicted == labels[held]))
    return {l2: correct[l2] / len(labels) for l2 in choices}


def cross_validated_accuracy(probabilities, features, labels, groups, l2: float) -> float:
    """Accuracy on each group (a repetition round) when fitted on the others; the base model's own
    accuracy when there is a single group (nothing to hold out)."""
    return _cross_validated_scores(probabilities, features, labels, groups, (l2,))[l2]


def choose_l2(probabilities, features, labels, groups, choices=L2_CHOICES) -> tuple[float, dict]:
    """The penalty with the best cross-validated accuracy (ties to the stronger penalty: closer to
    the base model), and every choice's accuracy."""
    scores = _cross_validated_scores(probabilities, features, labels, groups, tuple(choices))
    best = max(scores.values())
    chosen = max(l2 for l2, score in scores.items() if math.isclose(score, best))
    return chosen, scores


def fit_user_head(probabilities, features, labels, rounds, choices=L2_CHOICES) -> tuple[Head, dict]:
    """(the head, its figures) for one user's calibration windows grouped by repetition round: the
    penalty chosen by leave-one-round-out cross-validation (``SINGLE_ROUND_L2`` for one round), then
    the fit on every window. Figures: ``l2``, ``l2_scores`` and ``cross_validated_accuracy`` (None
    with one round)."""
    from threadpoolctl import threadpool_limits

    rounds = np.asarray(rounds)
    with threadpool_limits(limits=1, user_api="blas"):
        if len(np.unique(rounds)) > 1:
            l2, scores = choose_l2(probabilities, features, labels, rounds, choices)
            figures = {"l2": l2, "l2_scores": {str(key): value for key, value in scores.items()},
                       "cross_validated_accuracy": scores[l2]}
        else:
            l2 = SINGLE_ROUND_L2
            figures = {"l2": l2, "cross_validated_accuracy": None}
        return fit_head(probabilities, features, labels, l2), figures
