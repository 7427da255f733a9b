"""train.distill's --ensemble product, --kd-target product and --standardise options (defaults unchanged): the product of
experts as ensemble and KD target, and per-channel standardisation inside the models (TFLite too)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

tf_keras = pytest.importorskip("tf_keras")

from models.architectures import (  # noqa: E402
    BranchSpec,
    InputSpec,
    build_student,
    build_teacher,
    ensemble_inference_model,
    fit_standardisation,
    inference_model,
)
from train.distill.__main__ import build_parser  # noqa: E402
from train.distill.distiller import Distiller, soft_targets  # noqa: E402

TINY = InputSpec(window_samples=18, channels={"emg": 2, "acc": 3, "gyro": 5}, classes=4)
SMALL = BranchSpec(filters=(2, 3), lstm_units=4)


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def random_inputs(rows: int, seed: int = 0, offset: float = 0.0, scale: float = 1.0) -> dict:
    rng = np.random.default_rng(seed)
    return {name: (offset + scale * rng.normal(size=(rows, TINY.window_samples, count))).astype(np.float32)
            for name, count in TINY.channels.items()}


def randomised(model, seed: int):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.8, size=weight.shape).astype(np.float32) if weight.ndim > 1 else weight
                       for weight in model.get_weights()])
    return model


def test_defaults_are_the_mean_ensemble_and_raw_inputs():
    arguments = build_parser().parse_args(["--data", "d", "--out", "o"])
    assert (arguments.ensemble, arguments.kd_target, arguments.standardise) == ("mean", "mean", False)
    arguments = build_parser().parse_args(["--data", "d", "--out", "o", "--ensemble", "product", "--kd-target",
                                           "product", "--standardise"])
    assert (arguments.ensemble, arguments.kd_target, arguments.standardise) == ("product", "product", True)


def test_product_target_is_the_normalised_geometric_mean():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(3, 6, 4)).astype(np.float32)
    got = soft_targets(logits, np.zeros(6), 2.0, "product").numpy()
    geometric = np.exp(np.log(softmax(logits / 2.0)).mean(axis=0))
    np.testing.assert_allclose(got, geometric / geometric.sum(axis=-1, keepdims=True), rtol=1e-5)
    teachers = [build_teacher(name, TINY, SMALL) for name in TINY.channels]
    assert Distiller(build_student(TINY, SMALL), teachers, aggregation="product").aggregation == "product"


def test_product_ensemble_model_is_the_softmax_of_the_mean_logits():
    teachers = [randomised(build_teacher(name, TINY, SMALL), seed) for seed, name in enumerate(TINY.channels)]
    inputs = random_inputs(2, seed=3)
    logits = np.mean([teacher(inputs[teacher.input_names[0]], training=False).numpy() for teacher in teachers], axis=0)
    ensemble = ensemble_inference_model(teachers, TINY, SMALL, batch_size=2, combine="product")
    got = ensemble([inputs[name] for name in ensemble.input_names], training=False).numpy()
    np.testing.assert_allclose(got, softmax(logits), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="combine"):
        ensemble_inference_model(teachers, TINY, SMALL, combine="median")


def test_standardisation_is_fitted_per_channel_and_applied_inside_the_model():
    inputs = random_inputs(30, seed=1, offset=5.0, scale=3.0)
    statistics = fit_standardisation(inputs)
    assert {name: len(mean) for name, (mean, _) in statistics.items()} == TINY.channels
    plain, standardised = build_student(TINY, SMALL), build_student(TINY, SMALL, normalization=statistics)
    # No new weights: a plain model's weights fit, and models without statistics are as before.
    assert [w.shape for w in plain.get_weights()] == [w.shape for w in standardised.get_weights()]
    assert not any("standardise" in layer.name for layer in plain.layers)
    layer = standardised.get_layer("emg_standardise")
    out = layer(inputs["emg"]).numpy().reshape(-1, 2)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-3)
    teacher = build_teacher("gyro", TINY, SMALL, normalization=statistics)
    assert teacher.get_layer("gyro_standardise") is not None
    with pytest.raises(ValueError, match="normalization"):
        build_student(TINY, SMALL, normalization={"emg": ([0.0], [1.0])})


def test_a_standardised_student_and_product_ensemble_convert_to_tflite():
    from train.distill.export import check_exported, convert

    inputs = random_inputs(12, seed=2, offset=4.0, scale=2.0)
    statistics = fit_standardisation(inputs)
    tf_keras.utils.set_random_seed(2)
    student = randomised(build_student(TINY, SMALL, normalization=statistics), 4)
    fixed = inference_model(student, functools.partial(build_student, TINY, SMALL, normalization=statistics))
    keras_probabilities = fixed.predict([inputs[name] for name in fixed.input_names], batch_size=1, verbose=0)
    result = check_exported(convert(fixed, "float32"), keras_probabilities, inputs, keras_probabilities.argmax(axis=1),
                            latency_repeats=5)
    assert result["agreement_with_keras_pct"] == 100.0 and result["max_abs_probability_difference"] < 1e-4
    teachers = [randomised(build_teacher(name, TINY, SMALL, normalization=statistics), seed)
                for seed, name in enumerate(TINY.channels)]
    ensemble = ensemble_inference_model(teachers, TINY, SMALL, combine="product", normalization=statistics)
    expected = ensemble.predict([inputs[name] for name in ensemble.input_names], batch_size=1, verbose=0)
    result = check_exported(convert(ensemble, "float32"), expected, inputs, expected.argmax(axis=1), latency_repeats=5)
    assert result["agreement_with_keras_pct"] == 100.0 and result["max_abs_probability_difference"] < 1e-4
