"""Fitting: the BatchNormalization statistics that validation (and the kept, exported model) use."""

from __future__ import annotations

import numpy as np
import pytest

tf_keras = pytest.importorskip("tf_keras")

from models.architectures import BranchSpec, InputSpec, build_student, build_teacher  # noqa: E402
from train.distill.data import WindowSet  # noqa: E402
from train.distill.distiller import call_model  # noqa: E402
from train.distill.training import FitOptions, RecalibrateBatchNorm, fit_student, fit_teacher  # noqa: E402

TINY = InputSpec(window_samples=18, channels={"emg": 2, "acc": 3}, classes=4)
SMALL = BranchSpec(filters=(2, 2), lstm_units=4)


def window_set(count=40, seed=0, span=24) -> WindowSet:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, TINY.classes, size=count)
    spans = rng.normal(size=(count, span, 5)).astype(np.float32)
    spans += labels[:, None, None].astype(np.float32)  # learnable
    anchor = np.full(count, 20)
    return WindowSet(spans, anchor, anchor - 2, np.minimum(anchor + 2, span), labels, np.arange(count),
                     np.zeros(count, dtype=int), dict(TINY.channels), TINY.window_samples)


def batch_norm_inputs(model, inputs):
    (layer,) = [layer for layer in model.layers if isinstance(layer, tf_keras.layers.BatchNormalization)]
    return layer, call_model(tf_keras.Model(model.inputs, layer.input), inputs, training=False).numpy()


@pytest.mark.parametrize("builder", ["teacher", "student"])
def test_recalibration_sets_the_exact_statistics_of_the_training_sample(builder):
    tf_keras.utils.set_random_seed(0)
    model = build_teacher("acc", TINY, SMALL) if builder == "teacher" else build_student(TINY, SMALL)
    train = window_set()
    callback = RecalibrateBatchNorm(model, train, seed=3, rows=25, batch_size=7)  # batches that do not divide 25
    callback.on_test_begin()
    rows = np.sort(np.random.default_rng(3).permutation(len(train))[:25])
    layer, features = batch_norm_inputs(model, train.windows(rows))
    np.testing.assert_allclose(layer.moving_mean.numpy(), features.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), features.var(axis=0), rtol=1e-4, atol=1e-7)
    # In inference mode the BN output of that sample is then standardised (before its gamma/beta).
    normalised = (features - layer.moving_mean.numpy()) / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    np.testing.assert_allclose(normalised.mean(axis=0), 0.0, atol=1e-4)


@pytest.mark.parametrize("distilled", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_the_kept_model_carries_recalibrated_statistics(distilled):
    # After fitting, the model (best epoch restored) has BN statistics equal to the exact statistics
    # of the training sample under its final weights: validation and export see the same model.
    tf_keras.utils.set_random_seed(0)
    train, val = window_set(seed=0), window_set(seed=1)
    options = FitOptions(epochs=2, batch_size=8, learning_rate=0.01, patience=5)
    if distilled:
        teachers = [build_teacher(name, TINY, SMALL) for name in TINY.channels]  # untrained: enough here
        model = build_student(TINY, SMALL)
        history = fit_student(model, train, val, options, seed=0, teachers=teachers, aggregation="weighted")
    else:
        model = build_teacher("emg", TINY, SMALL)
        history = fit_teacher(model, train, val, options, seed=0)
    rows = np.sort(np.random.default_rng(0).permutation(len(train))[:1024])
    layer, features = batch_norm_inputs(model, train.windows(rows))
    np.testing.assert_allclose(layer.moving_mean.numpy(), features.mean(axis=0), rtol=1e-4, atol=1e-5)
    assert history["epochs_run"] == 2
